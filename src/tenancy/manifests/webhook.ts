// The admission webhook's own objects: namespace, ServiceAccount (no API token: the webhook
// reads its policy from a ConfigMap file), policy ConfigMap, TLS Secret, Deployment, Service,
// PodDisruptionBudget, and the Mutating/ValidatingWebhookConfigurations with the CA filled in.
// The configurations select the untrusted tenants' namespaces by kubernetes.io/metadata.name,
// a label users cannot change, so a tenant cannot opt out by relabelling.
import { TenantIndex } from "../policy/model.js";
import type { TenantPolicy } from "../policy/schema.js";
import type { WebhookTls } from "../tls.js";
import { LABEL_MANAGED_BY, LABEL_NAMESPACE_NAME, MANAGED_BY } from "./labels.js";
import type { Manifest } from "./tenant.js";

const APP = "kata-ts-tenancy-webhook";
const POLICY_DIR = "/etc/kata-ts/tenancy";
const TLS_DIR = "/etc/kata-ts/tls";

const b64 = (s: string): string => Buffer.from(s).toString("base64");

export function webhookManifests(p: TenantPolicy, policyText: string, tls: WebhookTls): Manifest[] {
  const w = p.webhook;
  const labels = { "app.kubernetes.io/name": APP, [LABEL_MANAGED_BY]: MANAGED_BY };
  const meta = (name: string) => ({ name, namespace: w.namespace, labels });
  const untrusted = new TenantIndex(p).untrustedNamespaces();

  const deployment: Manifest = {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: meta(w.service),
    spec: {
      replicas: w.replicas,
      selector: { matchLabels: { "app.kubernetes.io/name": APP } },
      template: {
        metadata: { labels },
        spec: {
          serviceAccountName: w.service,
          automountServiceAccountToken: false,
          securityContext: { runAsNonRoot: true, runAsUser: 65532, seccompProfile: { type: "RuntimeDefault" } },
          containers: [
            {
              name: "webhook",
              image: w.image,
              imagePullPolicy: "IfNotPresent",
              args: ["tenancy", "webhook", "--policy", `${POLICY_DIR}/policy.yaml`, "--cert", `${TLS_DIR}/tls.crt`, "--key", `${TLS_DIR}/tls.key`, "--port", String(w.port)],
              ports: [{ name: "https", containerPort: w.port, protocol: "TCP" }],
              readinessProbe: { httpGet: { path: "/healthz", port: "https", scheme: "HTTPS" }, periodSeconds: 5 },
              livenessProbe: { httpGet: { path: "/healthz", port: "https", scheme: "HTTPS" }, periodSeconds: 10 },
              resources: { requests: { cpu: "50m", memory: "64Mi" }, limits: { cpu: "500m", memory: "256Mi" } },
              securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ["ALL"] } },
              volumeMounts: [
                { name: "policy", mountPath: POLICY_DIR, readOnly: true },
                { name: "tls", mountPath: TLS_DIR, readOnly: true },
              ],
            },
          ],
          volumes: [
            { name: "policy", configMap: { name: `${w.service}-policy` } },
            { name: "tls", secret: { secretName: `${w.service}-tls` } },
          ],
        },
      },
    },
  };

  const clientConfig = (path: string) => ({ service: { namespace: w.namespace, name: w.service, path, port: 443 }, caBundle: b64(tls.caCert) });
  const namespaceSelector = { matchExpressions: [{ key: LABEL_NAMESPACE_NAME, operator: "In", values: untrusted }] };
  const common = {
    admissionReviewVersions: ["v1"],
    sideEffects: "None",
    failurePolicy: w.failurePolicy,
    timeoutSeconds: w.timeoutSeconds,
    matchPolicy: "Equivalent",
    namespaceSelector,
  };
  // With no untrusted namespace there is nothing to guard, and "In" needs at least one value.
  const configurations: Manifest[] =
    untrusted.length === 0
      ? []
      : [
          {
            apiVersion: "admissionregistration.k8s.io/v1",
            kind: "MutatingWebhookConfiguration",
            metadata: { name: APP, labels },
            webhooks: [
              {
                name: "pods.mutate.tenancy.kata-ts.io",
                clientConfig: clientConfig("/mutate"),
                rules: [{ apiGroups: [""], apiVersions: ["v1"], operations: ["CREATE"], resources: ["pods"], scope: "Namespaced" }],
                reinvocationPolicy: "IfNeeded",
                ...common,
              },
            ],
          },
          {
            apiVersion: "admissionregistration.k8s.io/v1",
            kind: "ValidatingWebhookConfiguration",
            metadata: { name: APP, labels },
            webhooks: [
              {
                name: "pods.validate.tenancy.kata-ts.io",
                clientConfig: clientConfig("/validate"),
                rules: [
                  { apiGroups: [""], apiVersions: ["v1"], operations: ["CREATE"], resources: ["pods"], scope: "Namespaced" },
                  { apiGroups: [""], apiVersions: ["v1"], operations: ["UPDATE"], resources: ["pods/ephemeralcontainers"], scope: "Namespaced" },
                ],
                ...common,
              },
            ],
          },
        ];

  return [
    { apiVersion: "v1", kind: "Namespace", metadata: { name: w.namespace, labels: { [LABEL_MANAGED_BY]: MANAGED_BY } } },
    { apiVersion: "v1", kind: "ServiceAccount", metadata: meta(w.service), automountServiceAccountToken: false },
    { apiVersion: "v1", kind: "ConfigMap", metadata: meta(`${w.service}-policy`), data: { "policy.yaml": policyText } },
    {
      apiVersion: "v1",
      kind: "Secret",
      metadata: meta(`${w.service}-tls`),
      type: "kubernetes.io/tls",
      data: { "tls.crt": b64(tls.cert), "tls.key": b64(tls.key), "ca.crt": b64(tls.caCert) },
    },
    deployment,
    {
      apiVersion: "v1",
      kind: "Service",
      metadata: meta(w.service),
      spec: { selector: { "app.kubernetes.io/name": APP }, ports: [{ name: "https", port: 443, targetPort: "https", protocol: "TCP" }] },
    },
    ...(w.replicas > 1
      ? [
          {
            apiVersion: "policy/v1",
            kind: "PodDisruptionBudget",
            metadata: meta(w.service),
            spec: { minAvailable: 1, selector: { matchLabels: { "app.kubernetes.io/name": APP } } },
          },
        ]
      : []),
    ...configurations,
  ];
}
