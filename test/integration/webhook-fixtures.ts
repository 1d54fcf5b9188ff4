// Real AdmissionReview v1 documents as the API server sends them, a tenant policy, and an HTTPS
// client that verifies the webhook against its generated CA. Shared by the webhook tests and
// bench/webhook.ts.
import { randomUUID } from "node:crypto";
import { Agent, request } from "node:https";
import { parsePolicy } from "../../src/tenancy/policy/load.js";

export const POLICY_YAML = `
apiVersion: tenancy.kata-ts.io/v1alpha1
kind: TenantPolicy
runtimeClasses:
  kata-ts:
    isolation: vm
    overhead: { cpu: 250m, memory: 160Mi }
    scheduling:
      nodeSelector: { kata-ts.io/runtime: "true" }
      tolerations: [{ key: kata-ts.io/vm-only, operator: Exists, effect: NoSchedule }]
  kata-ts-big: { isolation: vm }
  runc: { isolation: none }
tenants:
  - name: acme
    trust: untrusted
    namespaces: [acme-prod, acme-dev]
    runtimeClasses: [kata-ts]
    quota: { cpu: "8", memory: 16Gi }
  - name: platform
    trust: trusted
    namespaces: [platform-tools]
    defaultRuntimeClass: runc
    quota: { cpu: "4", memory: 8Gi }
`;

export const policy = () => parsePolicy(POLICY_YAML, "webhook-fixtures.yaml");

export type PodSpec = Record<string, unknown>;

export function pod(name: string, namespace: string, spec: PodSpec = {}): Record<string, unknown> {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace, labels: { app: name }, uid: randomUUID(), creationTimestamp: null },
    spec: {
      containers: [{ name: "app", image: "registry.example/app:1.0", resources: {}, terminationMessagePolicy: "File", imagePullPolicy: "IfNotPresent" }],
      restartPolicy: "Always",
      terminationGracePeriodSeconds: 30,
      dnsPolicy: "ClusterFirst",
      serviceAccountName: "default",
      securityContext: {},
      schedulerName: "default-scheduler",
      enableServiceLinks: true,
      preemptionPolicy: "PreemptLowerPriority",
      priority: 0,
      ...spec,
    },
    status: {},
  };
}

export interface ReviewOptions {
  namespace: string;
  object: unknown;
  operation?: "CREATE" | "UPDATE" | "DELETE" | "CONNECT";
  subResource?: string;
  uid?: string;
}

export function review(o: ReviewOptions): Record<string, unknown> {
  const operation = o.operation ?? "CREATE";
  const obj = o.object as { metadata?: { name?: string } } | null;
  return {
    apiVersion: "admission.k8s.io/v1",
    kind: "AdmissionReview",
    request: {
      uid: o.uid ?? randomUUID(),
      kind: { group: "", version: "v1", kind: "Pod" },
      resource: { group: "", version: "v1", resource: "pods" },
      ...(o.subResource === undefined ? {} : { subResource: o.subResource }),
      requestKind: { group: "", version: "v1", kind: "Pod" },
      requestResource: { group: "", version: "v1", resource: "pods" },
      name: obj?.metadata?.name ?? "",
      namespace: o.namespace,
      operation,
      userInfo: { username: "system:serviceaccount:kube-system:replicaset-controller", uid: randomUUID(), groups: ["system:serviceaccounts", "system:authenticated"] },
      object: operation === "DELETE" ? null : o.object,
      oldObject: operation === "CREATE" ? null : o.object,
      dryRun: false,
      options: { apiVersion: "meta.k8s.io/v1", kind: operation === "DELETE" ? "DeleteOptions" : operation === "UPDATE" ? "UpdateOptions" : "CreateOptions" },
    },
  };
}

export interface HttpResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/**
 * A keep-alive agent that verifies the webhook against `ca` for the name "localhost". The CA lives
 * on the agent: passed per request, Node builds a new TLS context each time (about 2 ms).
 */
export function webhookAgent(ca: string, maxSockets: number): Agent {
  return new Agent({ keepAlive: true, maxSockets, ca, servername: "localhost" });
}

/** One HTTPS request to the webhook, verified against `ca` (or the agent's CA) for the name "localhost". */
export function call(
  port: number,
  ca: string | undefined,
  path: string,
  opts: { method?: string; body?: string | Buffer; agent?: Agent; timeoutMs?: number } = {},
): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: "127.0.0.1",
        servername: "localhost",
        port,
        path,
        method: opts.method ?? (opts.body === undefined ? "GET" : "POST"),
        ...(opts.agent === undefined ? { ca } : {}),
        agent: opts.agent,
        headers: opts.body === undefined ? {} : { "content-type": "application/json", "content-length": Buffer.byteLength(opts.body) },
        timeout: opts.timeoutMs ?? 10_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString("utf8") }));
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error(`request to ${path} timed out`)));
    req.on("error", reject);
    req.end(opts.body);
  });
}
