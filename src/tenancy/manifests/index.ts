// Everything `kata-ts tenancy manifests` prints, in apply order: the webhook's namespace and
// objects first (so the configurations find their Service), then each tenant's namespaces.
import { stringify } from "yaml";
import type { TenantPolicy } from "../policy/schema.js";
import type { WebhookTls } from "../tls.js";
import { tenantManifests, type Manifest } from "./tenant.js";
import { webhookManifests } from "./webhook.js";

export type { Manifest };

export function buildManifests(p: TenantPolicy, opts: { policyText: string; tls: WebhookTls }): Manifest[] {
  return [...webhookManifests(p, opts.policyText, opts.tls), ...p.tenants.flatMap((t) => tenantManifests(p, t))];
}

/** A multi-document YAML stream for `kubectl apply -f -`. */
export function renderYaml(manifests: readonly object[]): string {
  return manifests.map((m) => stringify(m, { lineWidth: 0, aliasDuplicateObjects: false })).join("---\n");
}
