// Labels and names the tenancy manifests share with the webhook configuration's selectors.
export const LABEL_TENANT = "tenancy.kata-ts.io/tenant";
export const LABEL_TRUST = "tenancy.kata-ts.io/trust";
export const LABEL_MANAGED_BY = "app.kubernetes.io/managed-by";
export const MANAGED_BY = "kata-ts";
/** Set by the API server on every namespace and not changeable by users (since Kubernetes 1.21). */
export const LABEL_NAMESPACE_NAME = "kubernetes.io/metadata.name";
export const ANNOTATION_OVERHEAD = "tenancy.kata-ts.io/pod-overhead";
export const ANNOTATION_DEFAULT_PODS = "tenancy.kata-ts.io/default-pods-that-fit";
