// kata-ts tenancy: tenant policy -> Kubernetes manifests, the admission webhook, EMCO resources.
import { parseArgs } from "node:util";
import { once } from "node:events";
import { KataError } from "../../util/errors.js";
import { createLogger } from "../../util/log.js";
import { checkPolicy, emcoOutput, manifestsYaml, serveWebhook } from "../../tenancy/cli-actions.js";

const USAGE = `usage:
  kata-ts tenancy check POLICY                     validate a tenant policy file
  kata-ts tenancy manifests POLICY [--tls-dir DIR] Kubernetes YAML: tenant namespaces, quotas, network
                                                   policies, RBAC, and the admission webhook (DIR keeps its TLS)
  kata-ts tenancy webhook --policy P --cert C --key K [--port 8443] [--host 0.0.0.0]
                                                   serve the admission webhook over HTTPS
  kata-ts tenancy emco POLICY [--format emcoctl|rest]
                                                   EMCO projects, logical clouds and intents per tenant
`;

function positional(args: string[], what: string): string {
  const [first] = args;
  if (first === undefined || args.length !== 1) throw new KataError("INVALID_ARGUMENT", `expected one ${what}\n\n${USAGE}`);
  return first;
}

export async function run(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  switch (sub) {
    case "check": {
      const { positionals } = parseArgs({ args: rest, allowPositionals: true });
      process.stdout.write(await checkPolicy(positional(positionals, "POLICY file")));
      return 0;
    }
    case "manifests": {
      const { values, positionals } = parseArgs({ args: rest, allowPositionals: true, options: { "tls-dir": { type: "string" } } });
      process.stdout.write(await manifestsYaml(positional(positionals, "POLICY file"), values["tls-dir"]));
      return 0;
    }
    case "emco": {
      const { values, positionals } = parseArgs({ args: rest, allowPositionals: true, options: { format: { type: "string", default: "emcoctl" } } });
      if (values.format !== "emcoctl" && values.format !== "rest") throw new KataError("INVALID_ARGUMENT", `--format must be emcoctl or rest, not "${values.format}"`);
      process.stdout.write(await emcoOutput(positional(positionals, "POLICY file"), values.format));
      return 0;
    }
    case "webhook": {
      const { values } = parseArgs({
        args: rest,
        options: {
          policy: { type: "string" },
          cert: { type: "string" },
          key: { type: "string" },
          port: { type: "string", default: "8443" },
          host: { type: "string", default: "0.0.0.0" },
        },
      });
      const port = Number(values.port);
      if (values.policy === undefined || values.cert === undefined || values.key === undefined || !Number.isInteger(port)) {
        throw new KataError("INVALID_ARGUMENT", `webhook needs --policy, --cert, --key and a numeric --port\n\n${USAGE}`);
      }
      const logger = createLogger("tenancy-webhook");
      const server = await serveWebhook({ policyFile: values.policy, certFile: values.cert, keyFile: values.key, port, host: values.host, logger });
      const [signal] = (await Promise.race([once(process, "SIGTERM"), once(process, "SIGINT")])) as [string];
      logger.info({ signal }, "stopping");
      await server.close();
      return 0;
    }
    case undefined:
    case "-h":
    case "--help":
    case "help":
      process.stdout.write(USAGE);
      return sub === undefined ? 2 : 0;
    default:
      throw new KataError("INVALID_ARGUMENT", `unknown tenancy command "${sub}"\n\n${USAGE}`);
  }
}
