// Typed clients from protobuf-es service descriptors: client.check({}) -> Promise<CheckResponse>.
import { create, fromBinary, toBinary, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import type { GenService, GenServiceMethods } from "@bufbuild/protobuf/codegenv2";
import type { CallOptions, TtrpcClient } from "./client.js";
import { TtrpcError } from "./errors.js";
import { Code } from "./status.js";

export type TypedClient<S extends GenServiceMethods> = {
  [K in keyof S]: (
    input?: MessageInitShape<S[K]["input"]>,
    opts?: CallOptions,
  ) => Promise<MessageShape<S[K]["output"]>>;
};

export function createClient<S extends GenServiceMethods>(client: TtrpcClient, service: GenService<S>): TypedClient<S> {
  const typed: Record<string, unknown> = {};
  for (const method of service.methods) {
    if (method.methodKind !== "unary") continue;
    typed[method.localName] = async (input: unknown = {}, opts?: CallOptions) => {
      const payload = toBinary(method.input, create(method.input, input as never));
      const out = await client.call(service.typeName, method.name, payload, opts);
      try {
        return fromBinary(method.output, out);
      } catch (err) {
        throw new TtrpcError(Code.INTERNAL, `could not decode ${method.output.typeName} from ${service.typeName}.${method.name}`, {
          cause: err,
        });
      }
    };
  }
  return typed as TypedClient<S>;
}
