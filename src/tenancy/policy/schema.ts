// The tenant policy file (tenancy.kata-ts.io/v1alpha1 TenantPolicy): who the tenants are, which
// namespaces they own, whether they are trusted, and what they may use. Every object is strict:
// an unknown key is an error, so a typo cannot silently weaken isolation.
import { z } from "zod";
import { isQuantity } from "../quantity.js";

export const POLICY_API_VERSION = "tenancy.kata-ts.io/v1alpha1";
export const POLICY_KIND = "TenantPolicy";

const dnsLabel = z
  .string()
  .max(63, "must be at most 63 characters")
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, "must be a lowercase RFC 1123 label (a-z, 0-9, '-')");

const dnsSubdomain = z
  .string()
  .max(253, "must be at most 253 characters")
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/, "must be a lowercase RFC 1123 subdomain");

const quantity = z
  .union([z.string(), z.number()])
  .transform(String)
  .refine(isQuantity, "must be a Kubernetes quantity such as 500m, 2, 512Mi or 4Gi");

const resources = z.strictObject({ cpu: quantity, memory: quantity });

const toleration = z.strictObject({
  key: z.string().optional(),
  operator: z.enum(["Exists", "Equal"]).optional(),
  value: z.string().optional(),
  effect: z.enum(["NoSchedule", "PreferNoSchedule", "NoExecute"]).optional(),
  tolerationSeconds: z.number().int().optional(),
});

const runtimeClass = z.strictObject({
  /** "vm": pods get their own kernel (kata-ts); "none": they share the node's kernel (runc). */
  isolation: z.enum(["vm", "none"]),
  /** Must equal the RuntimeClass's overhead.podFixed: the webhook sets it on pods it moves into a VM. */
  overhead: resources.optional(),
  /** Mirror of the RuntimeClass's scheduling: the webhook merges it into pods it moves into a VM. */
  scheduling: z
    .strictObject({ nodeSelector: z.record(z.string(), z.string()).optional(), tolerations: z.array(toleration).optional() })
    .optional(),
});

const subject = z.strictObject({
  kind: z.enum(["User", "Group", "ServiceAccount"]),
  name: z.string().min(1),
  namespace: dnsLabel.optional(),
});

const emcoApp = z.strictObject({
  compositeApp: dnsSubdomain,
  version: z.string().min(1).default("v1"),
  deploymentIntentGroup: dnsSubdomain,
  app: dnsSubdomain,
  /** The app's workloads whose pod template gets runtimeClassName (Deployment, StatefulSet, ...). */
  workloads: z
    .array(z.strictObject({ kind: z.enum(["Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod"]), name: dnsSubdomain }))
    .min(1),
});

const tenant = z.strictObject({
  name: dnsLabel,
  trust: z.enum(["trusted", "untrusted"]),
  namespaces: z.array(dnsLabel).min(1, "a tenant needs at least one namespace"),
  /** Runtime classes the tenant may use; default: the VM classes (untrusted) or all (trusted). */
  runtimeClasses: z.array(dnsSubdomain).min(1).optional(),
  /** What the webhook sets when a pod names none; default: the policy's defaultVmRuntimeClass. */
  defaultRuntimeClass: dnsSubdomain.optional(),
  /** Hard limits for each of the tenant's namespaces; Kubernetes counts pod overhead in them. */
  quota: z.strictObject({ cpu: quantity, memory: quantity, pods: z.number().int().positive().optional() }),
  /** Per-container defaults (LimitRange) for containers that set no requests/limits. */
  containerDefaults: resources.default({ cpu: "500m", memory: "512Mi" }),
  network: z
    .strictObject({
      /** Namespaces outside the tenant allowed to reach the tenant's pods (e.g. an ingress controller's). */
      allowIngressFromNamespaces: z.array(dnsLabel).default([]),
      allowDns: z.boolean().default(true),
    })
    .default({ allowIngressFromNamespaces: [], allowDns: true }),
  /** Bound to the built-in "edit" ClusterRole in each tenant namespace. */
  admins: z.array(subject).default([]),
  emco: z
    .strictObject({
      project: dnsSubdomain.optional(),
      /** The logical cloud's namespace; default: the tenant's first namespace. */
      namespace: dnsLabel.optional(),
      apps: z.array(emcoApp).default([]),
    })
    .optional(),
});

const webhook = z.strictObject({
  namespace: dnsLabel.default("kata-ts-system"),
  service: dnsLabel.default("kata-ts-tenancy-webhook"),
  image: z.string().min(1).default("kata-ts:latest"),
  port: z.number().int().min(1024).max(65535).default(8443),
  replicas: z.number().int().min(1).default(2),
  failurePolicy: z.enum(["Fail", "Ignore"]).default("Fail"),
  timeoutSeconds: z.number().int().min(1).max(30).default(10),
});

const emco = z.strictObject({
  clusterProvider: dnsSubdomain,
  /** Label carried by EMCO clusters whose nodes run kata-ts. */
  clusterLabel: dnsSubdomain.default("kata-ts-capable"),
  /** Name the generic action controller is registered under in EMCO. */
  gacController: dnsSubdomain.default("gac"),
  clusters: z.array(z.strictObject({ name: dnsSubdomain, kataTs: z.boolean() })).default([]),
});

export const policySchema = z.strictObject({
  apiVersion: z.literal(POLICY_API_VERSION),
  kind: z.literal(POLICY_KIND),
  runtimeClasses: z.record(dnsSubdomain, runtimeClass),
  defaultVmRuntimeClass: dnsSubdomain.default("kata-ts"),
  webhook: webhook.default(() => webhook.parse({})),
  emco: emco.optional(),
  tenants: z.array(tenant).min(1, "a policy needs at least one tenant"),
});

export type TenantPolicy = z.output<typeof policySchema>;
export type Tenant = TenantPolicy["tenants"][number];
export type RuntimeClassDecl = TenantPolicy["runtimeClasses"][string];
