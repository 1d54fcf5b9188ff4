// The installer DaemonSet and what it needs: it runs `kata-ts install` on every node (privileged,
// hostPID so it can restart the node's containerd through PID 1's namespaces), labels the node
// for the RuntimeClass's nodeSelector, and on termination (preStop) unlabels the node first (no new
// kata-ts pods land there) and uninstalls. A separate cleanup DaemonSet does only the cleanup half,
// for removing kata-ts after the installer DaemonSet is gone (the pattern kata-deploy uses).
import { NODE_LABEL_KEY, NODE_LABEL_VALUE } from "../node-install.js";

export const NAMESPACE = "kube-system";
export const SERVICE_ACCOUNT = "kata-ts-installer";
/**
 * The image keeps a kata-ts package (a checkout after `npm run build`, or an installed tree's lib/)
 * at /usr/lib/kata-ts, not under /opt, which the host's /opt covers; node and kubectl on PATH, and
 * the guest assets in /var/lib/kata-ts/assets.
 */
const CLI = "/usr/lib/kata-ts/dist/src/cli/main.js";
const partOf = { "app.kubernetes.io/part-of": "kata-ts" };

export interface InstallerOptions {
  /** Image holding node, kubectl and the kata-ts package (compiled, guest assets built) at /usr/lib/kata-ts. */
  image: string;
}

const label = `kubectl label node "$NODE_NAME" ${NODE_LABEL_KEY}=${NODE_LABEL_VALUE} --overwrite`;
const unlabel = `kubectl label node "$NODE_NAME" ${NODE_LABEL_KEY}- || true`;
const install = `node ${CLI} install --restart host --shim-link-dir /host/usr/local/bin`;
const uninstall = `node ${CLI} uninstall --restart host`;
const sleepForever = "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done";

function rbac() {
  return [
    { apiVersion: "v1", kind: "ServiceAccount", metadata: { name: SERVICE_ACCOUNT, namespace: NAMESPACE, labels: partOf } },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRole",
      metadata: { name: SERVICE_ACCOUNT, labels: partOf },
      // Labelling its own node is all the installer does through the API.
      rules: [{ apiGroups: [""], resources: ["nodes"], verbs: ["get", "patch"] }],
    },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRoleBinding",
      metadata: { name: SERVICE_ACCOUNT, labels: partOf },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: SERVICE_ACCOUNT },
      subjects: [{ kind: "ServiceAccount", name: SERVICE_ACCOUNT, namespace: NAMESPACE }],
    },
  ];
}

/** Host paths at the same place inside the container, so paths written into configs are host paths. */
const hostMounts: Array<[name: string, hostPath: string, mountPath: string]> = [
  ["containerd-etc", "/etc/containerd", "/etc/containerd"],
  ["opt", "/opt", "/opt"], // /opt/kata-ts is renamed into place: its parent must be the host's
  ["local-bin", "/usr/local/bin", "/host/usr/local/bin"],
  ["containerd-run", "/run/containerd", "/run/containerd"],
  ["dbus", "/run/dbus", "/run/dbus"],
];

function daemonSet(name: string, component: string, image: string, script: string, preStop?: string) {
  const labels = { app: name, ...partOf };
  return {
    apiVersion: "apps/v1",
    kind: "DaemonSet",
    metadata: { name, namespace: NAMESPACE, labels },
    spec: {
      selector: { matchLabels: { app: name } },
      updateStrategy: { type: "RollingUpdate", rollingUpdate: { maxUnavailable: 1 } },
      template: {
        metadata: { labels: { ...labels, "app.kubernetes.io/component": component } },
        spec: {
          serviceAccountName: SERVICE_ACCOUNT,
          hostPID: true,
          priorityClassName: "system-node-critical",
          tolerations: [{ operator: "Exists" }],
          terminationGracePeriodSeconds: 120,
          containers: [
            {
              name: component,
              image,
              command: ["/bin/sh", "-c", script],
              env: [{ name: "NODE_NAME", valueFrom: { fieldRef: { fieldPath: "spec.nodeName" } } }],
              securityContext: { privileged: true },
              ...(preStop ? { lifecycle: { preStop: { exec: { command: ["/bin/sh", "-c", preStop] } } } } : {}),
              volumeMounts: hostMounts.map(([n, , mountPath]) => ({ name: n, mountPath })),
            },
          ],
          volumes: hostMounts.map(([n, path]) => ({ name: n, hostPath: { path, type: "DirectoryOrCreate" } })),
        },
      },
    },
  };
}

export function installerManifests(o: InstallerOptions) {
  return [
    ...rbac(),
    daemonSet("kata-ts-deploy", "installer", o.image, `set -e; ${install}; ${label}; ${sleepForever}`, `${unlabel}; ${uninstall}`),
  ];
}

/** Apply after deleting kata-ts-deploy to remove kata-ts from every node; delete it once its pods are Running. */
export function cleanupManifests(o: InstallerOptions) {
  return [daemonSet("kata-ts-cleanup", "cleanup", o.image, `set -e; ${unlabel}; ${uninstall}; ${sleepForever}`)];
}
