// The CRI handler's options table reaches the shim as a protobuf Any, on `start`'s stdin and in
// CreateTaskRequest.options. Only runtimeoptions.v1.Options means something to kata-ts (its
// ConfigPath); other option types (e.g. runc's) are ignored, like Kata does.
import { fromBinary } from "@bufbuild/protobuf";
import { AnySchema, type Any } from "@bufbuild/protobuf/wkt";
import { OptionsSchema } from "../protocol/gen/runtimeoptions/v1/api_pb.js";
import { KataError } from "../util/errors.js";

const optionsTypeName = "runtimeoptions.v1.Options";

export interface RuntimeOptions {
  configPath: string;
}

/** ConfigPath from a serialized Any (start's stdin); empty input means no options. */
export function decodeRuntimeOptionsBytes(bytes: Uint8Array): RuntimeOptions {
  if (bytes.length === 0) return { configPath: "" };
  let any: Any;
  try {
    any = fromBinary(AnySchema, bytes);
  } catch (err) {
    throw new KataError("INVALID_ARGUMENT", `runtime options on stdin are not a protobuf Any: ${(err as Error).message}`, { cause: err });
  }
  return decodeRuntimeOptions(any);
}

export function decodeRuntimeOptions(any: Any | undefined): RuntimeOptions {
  if (any === undefined || !isOptionsType(any.typeUrl)) return { configPath: "" };
  try {
    return { configPath: fromBinary(OptionsSchema, any.value).configPath };
  } catch (err) {
    throw new KataError("INVALID_ARGUMENT", `runtime options ${any.typeUrl} do not decode: ${(err as Error).message}`, { cause: err });
  }
}

function isOptionsType(typeUrl: string): boolean {
  return typeUrl === optionsTypeName || typeUrl.endsWith(`/${optionsTypeName}`);
}
