// The library side of `kata-ts tenancy ...`: each verb's work, so the command file only parses flags.
import { readFile } from "node:fs/promises";
import { KataError } from "../util/errors.js";
import type { Logger } from "../util/log.js";
import { formatManifestError, validateManifests } from "../k8s/validate.js";
import { buildEmcoResources, renderEmcoctl, renderRest } from "./emco.js";
import { buildManifests, renderYaml } from "./manifests/index.js";
import { readPolicyFile as readPolicy } from "./policy/load.js";
import type { TenantPolicy } from "./policy/schema.js";
import { generateWebhookTls, readWebhookTls, serviceDnsNames, writeWebhookTls, type WebhookTls } from "./tls.js";
import { WebhookServer } from "./admission/server.js";

/** The webhook's TLS: reused from `tlsDir` when it holds one, else generated (and saved there). */
async function webhookTls(policy: TenantPolicy, tlsDir: string | undefined): Promise<WebhookTls> {
  const existing = tlsDir === undefined ? undefined : await readWebhookTls(tlsDir);
  if (existing !== undefined) return existing;
  const tls = generateWebhookTls({ dnsNames: serviceDnsNames(policy.webhook.service, policy.webhook.namespace) });
  if (tlsDir !== undefined) await writeWebhookTls(tlsDir, tls);
  return tls;
}

/** Kubernetes YAML for the policy, checked against the API schemas before it is printed. */
export async function manifestsYaml(policyFile: string, tlsDir?: string): Promise<string> {
  const { policy, text } = await readPolicy(policyFile);
  const manifests = buildManifests(policy, { policyText: text, tls: await webhookTls(policy, tlsDir) });
  const errors = await validateManifests(manifests);
  if (errors.length > 0) {
    throw new KataError("INTERNAL", `generated manifests fail the Kubernetes schema (a kata-ts bug):\n  ${errors.map(formatManifestError).join("\n  ")}`);
  }
  return renderYaml(manifests);
}

export async function emcoOutput(policyFile: string, format: "emcoctl" | "rest"): Promise<string> {
  const { policy } = await readPolicy(policyFile);
  const resources = buildEmcoResources(policy);
  return format === "rest" ? `${JSON.stringify(renderRest(resources), null, 2)}\n` : renderEmcoctl(resources);
}

export async function checkPolicy(policyFile: string): Promise<string> {
  const { policy } = await readPolicy(policyFile);
  const lines = policy.tenants.map((t) => `  ${t.name} (${t.trust}): ${t.namespaces.join(", ")}`);
  return `${policyFile}: valid, ${policy.tenants.length} tenant(s)\n${lines.join("\n")}\n`;
}

export interface ServeOptions {
  policyFile: string;
  certFile: string;
  keyFile: string;
  port: number;
  host: string;
  logger: Logger;
}

/** Starts the webhook; resolves once it listens, with the running server. */
export async function serveWebhook(o: ServeOptions): Promise<WebhookServer> {
  const { policy } = await readPolicy(o.policyFile);
  const [cert, key] = await Promise.all([readFile(o.certFile, "utf8"), readFile(o.keyFile, "utf8")]).catch((err: unknown) => {
    throw new KataError("NOT_FOUND", `cannot read the webhook's certificate or key: ${(err as Error).message}`, { cause: err });
  });
  const server = new WebhookServer({ policy, cert, key, port: o.port, host: o.host, logger: o.logger });
  const addr = await server.listen();
  o.logger.info({ ...addr, tenants: policy.tenants.length }, "tenancy webhook listening");
  return server;
}
