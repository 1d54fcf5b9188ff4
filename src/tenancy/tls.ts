// The webhook's TLS material: a self-signed CA (its certificate becomes the webhook
// configurations' caBundle) and a serving certificate for the Service's DNS names, signed by it.
// Keys come from node:crypto (native, fast); node-forge only assembles and signs the X.509
// certificates, which Node cannot do, so no openssl binary is needed.
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { generateKeyPairSync, randomBytes } from "node:crypto";
import forge from "node-forge";
import { KataError } from "../util/errors.js";

export interface WebhookTls {
  caCert: string;
  /** Serving certificate (PEM). */
  cert: string;
  /** Serving key (PKCS#8 PEM). */
  key: string;
}

export interface TlsOptions {
  dnsNames: string[];
  ipAddresses?: string[];
  validDays?: number;
  now?: Date;
}

/** The names the API server uses to reach a Service. */
export function serviceDnsNames(service: string, namespace: string): string[] {
  return [service, `${service}.${namespace}`, `${service}.${namespace}.svc`, `${service}.${namespace}.svc.cluster.local`];
}

/** A positive 128-bit serial (top bit clear, so DER does not read it as negative). */
function serial(): string {
  const b = randomBytes(16);
  b[0] = ((b[0] ?? 0) & 0x7f) | 0x01;
  return b.toString("hex");
}

function rsaKeyPair(): { pem: string; priv: forge.pki.rsa.PrivateKey; pub: forge.pki.rsa.PublicKey } {
  const { privateKey, publicKey } = generateKeyPairSync("rsa", {
    modulusLength: 2048,
    privateKeyEncoding: { type: "pkcs8", format: "pem" },
    publicKeyEncoding: { type: "spki", format: "pem" },
  });
  return {
    pem: privateKey,
    priv: forge.pki.privateKeyFromPem(privateKey) as forge.pki.rsa.PrivateKey,
    pub: forge.pki.publicKeyFromPem(publicKey) as forge.pki.rsa.PublicKey,
  };
}

function newCert(pub: forge.pki.PublicKey, notBefore: Date, notAfter: Date): forge.pki.Certificate {
  const c = forge.pki.createCertificate();
  c.publicKey = pub;
  c.serialNumber = serial();
  c.validity.notBefore = notBefore;
  c.validity.notAfter = notAfter;
  return c;
}

export function generateWebhookTls(opts: TlsOptions): WebhookTls {
  if (opts.dnsNames.length === 0) throw new KataError("INVALID_ARGUMENT", "a serving certificate needs at least one DNS name");
  const notBefore = new Date((opts.now ?? new Date()).getTime() - 5 * 60_000); // tolerate clock skew
  const notAfter = new Date(notBefore.getTime() + (opts.validDays ?? 825) * 86_400_000);

  const caKeys = rsaKeyPair();
  const ca = newCert(caKeys.pub, notBefore, notAfter);
  const caName = [{ name: "commonName", value: "kata-ts tenancy webhook CA" }];
  ca.setSubject(caName);
  ca.setIssuer(caName);
  ca.setExtensions([
    { name: "basicConstraints", cA: true, pathLenConstraint: 0, critical: true },
    { name: "keyUsage", keyCertSign: true, cRLSign: true, critical: true },
    { name: "subjectKeyIdentifier" },
  ]);
  ca.sign(caKeys.priv, forge.md.sha256.create());

  const leafKeys = rsaKeyPair();
  const leaf = newCert(leafKeys.pub, notBefore, notAfter);
  leaf.setSubject([{ name: "commonName", value: opts.dnsNames[0] }]);
  leaf.setIssuer(caName);
  leaf.setExtensions([
    { name: "basicConstraints", cA: false, critical: true },
    { name: "keyUsage", digitalSignature: true, keyEncipherment: true, critical: true },
    { name: "extKeyUsage", serverAuth: true },
    {
      name: "subjectAltName",
      altNames: [
        ...opts.dnsNames.map((value) => ({ type: 2, value })), // dNSName
        ...(opts.ipAddresses ?? []).map((ip) => ({ type: 7, ip })), // iPAddress
      ],
    },
    { name: "subjectKeyIdentifier" },
    { name: "authorityKeyIdentifier", keyIdentifier: ca.generateSubjectKeyIdentifier().getBytes() },
  ]);
  leaf.sign(caKeys.priv, forge.md.sha256.create());

  return { caCert: forge.pki.certificateToPem(ca), cert: forge.pki.certificateToPem(leaf), key: leafKeys.pem };
}

const FILES = { caCert: "ca.crt", cert: "tls.crt", key: "tls.key" } as const;

/** Reads ca.crt, tls.crt, tls.key from `dir`, or undefined if none of them is there. */
export async function readWebhookTls(dir: string): Promise<WebhookTls | undefined> {
  const read = (f: string) => readFile(join(dir, f), "utf8").catch((err: NodeJS.ErrnoException) => {
    if (err.code === "ENOENT") return undefined;
    throw err;
  });
  const [caCert, cert, key] = await Promise.all([read(FILES.caCert), read(FILES.cert), read(FILES.key)]);
  if (caCert === undefined && cert === undefined && key === undefined) return undefined;
  if (caCert === undefined || cert === undefined || key === undefined) {
    throw new KataError("FAILED_PRECONDITION", `${dir} must hold all of ca.crt, tls.crt and tls.key (or none, to generate them)`);
  }
  return { caCert, cert, key };
}

export async function writeWebhookTls(dir: string, tls: WebhookTls): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await writeFile(join(dir, FILES.caCert), tls.caCert, { mode: 0o644 });
  await writeFile(join(dir, FILES.cert), tls.cert, { mode: 0o644 });
  await writeFile(join(dir, FILES.key), tls.key, { mode: 0o600 });
}
