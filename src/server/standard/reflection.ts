/**
 * gRPC server reflection (grpc.reflection.v1 and v1alpha) on the grpc-js port, answered from the
 * protobuf-es descriptors the services are typed with: each file's FileDescriptorProto is
 * serialized as is, with its imports (validate.proto, the well-known types) alongside.
 *
 * Not `@grpc/reflection` (v1.0.4, tried with these descriptors): it takes them, but re-encodes
 * every file through protobufjs, which drops custom options, so clients would see none of the
 * buf.validate rules (risk.proto served as 4,837 of its 6,300 bytes); it keys extensions with a
 * leading dot, so allExtensionNumbersOfType and fileContainingExtension answer NOT_FOUND; it
 * leaves option-only imports (validate.proto) out of fileContainingSymbol; and its streams end
 * only when the client half-closes, which would hold shutdown.
 */
import {
  create,
  type DescExtension,
  type DescFile,
  type DescService,
  fromBinary,
  type Message,
  toBinary,
} from "@bufbuild/protobuf";
import { nestedTypes } from "@bufbuild/protobuf/reflect";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import { reflectionProtocol, type StandardService } from "./protocols.js";

type RequestCase =
  | { case: "fileByFilename"; value: string }
  | { case: "fileContainingSymbol"; value: string }
  | { case: "fileContainingExtension"; value: { containingType: string; extensionNumber: number } }
  | { case: "allExtensionNumbersOfType"; value: string }
  | { case: "listServices"; value: string }
  | { case: undefined; value?: undefined };

interface ReflectionRequest extends Message {
  host: string;
  messageRequest: RequestCase;
}

/** What reflection can answer: every file, symbol and extension reachable from the services. */
export class ReflectionIndex {
  private readonly files = new Map<string, DescFile>();
  private readonly symbols = new Map<string, DescFile>();
  private readonly extensions: DescExtension[] = [];
  private readonly bytes = new Map<string, Uint8Array>();

  /** Indexes `services` and every file they import, transitively. */
  constructor(readonly services: readonly DescService[]) {
    for (const s of services) this.addFile(s.file);
  }

  private addFile(file: DescFile): void {
    // DescFile.name drops ".proto"; reflection clients ask by the proto file name.
    if (this.files.has(file.proto.name)) return;
    this.files.set(file.proto.name, file);
    for (const dep of file.dependencies) this.addFile(dep);
    for (const type of nestedTypes(file)) {
      this.symbols.set(type.typeName, file);
      if (type.kind === "service") {
        for (const m of type.methods) this.symbols.set(`${type.typeName}.${m.name}`, file);
      }
      if (type.kind === "message") {
        for (const f of type.fields) this.symbols.set(`${type.typeName}.${f.name}`, file);
        for (const o of type.oneofs) this.symbols.set(`${type.typeName}.${o.name}`, file);
      }
      if (type.kind === "extension") this.extensions.push(type);
    }
  }

  /** The service names, fully qualified. */
  serviceNames(): string[] {
    return this.services.map((s) => s.typeName);
  }

  /** The file named `name` (e.g. "governance/v1/risk.proto"), or undefined. */
  fileByName(name: string): DescFile | undefined {
    return this.files.get(name);
  }

  /** The file declaring `symbol` (a message, field, oneof, enum, service, method or extension). */
  fileBySymbol(symbol: string): DescFile | undefined {
    return this.symbols.get(symbol.replace(/^\./, ""));
  }

  /** The extensions of `typeName`. */
  extensionsOf(typeName: string): DescExtension[] {
    return this.extensions.filter((e) => e.extendee.typeName === typeName);
  }

  /** `file` serialized, then its imports not yet in `sent` (which is updated). */
  serialize(file: DescFile, sent: Set<string>): Uint8Array[] {
    const out: Uint8Array[] = [];
    const visit = (f: DescFile) => {
      if (sent.has(f.proto.name)) return;
      sent.add(f.proto.name);
      let b = this.bytes.get(f.proto.name);
      if (!b) {
        b = toBinary(FileDescriptorProtoSchema, f.proto);
        this.bytes.set(f.proto.name, b);
      }
      out.push(b);
      for (const dep of f.dependencies) visit(dep);
    };
    visit(file);
    return out;
  }
}

function answer(
  index: ReflectionIndex,
  req: ReflectionRequest,
  sent: Set<string>,
): Record<string, unknown> {
  const files = (file: DescFile | undefined, what: string) =>
    file
      ? {
          case: "fileDescriptorResponse",
          value: { fileDescriptorProto: index.serialize(file, sent) },
        }
      : notFound(what);
  const notFound = (what: string) => ({
    case: "errorResponse",
    value: { errorCode: grpc.status.NOT_FOUND, errorMessage: `${what} not found` },
  });
  const r = req.messageRequest;
  switch (r.case) {
    case "listServices":
      return {
        case: "listServicesResponse",
        value: { service: index.serviceNames().map((name) => ({ name })) },
      };
    case "fileByFilename":
      return files(index.fileByName(r.value), `file ${r.value}`);
    case "fileContainingSymbol":
      return files(index.fileBySymbol(r.value), `symbol ${r.value}`);
    case "fileContainingExtension": {
      const ext = index
        .extensionsOf(r.value.containingType)
        .find((e) => e.number === r.value.extensionNumber);
      return files(ext?.file, `extension ${r.value.extensionNumber} of ${r.value.containingType}`);
    }
    case "allExtensionNumbersOfType":
      return {
        case: "allExtensionNumbersResponse",
        value: {
          baseTypeName: r.value,
          extensionNumber: index.extensionsOf(r.value).map((e) => e.number),
        },
      };
    default:
      return {
        case: "errorResponse",
        value: {
          errorCode: grpc.status.INVALID_ARGUMENT,
          errorMessage: "empty reflection request",
        },
      };
  }
}

function addProtocol(
  server: grpc.Server,
  protocol: StandardService,
  index: ReflectionIndex,
  open: Set<grpc.ServerDuplexStream<Message, Message>>,
): void {
  const method = protocol.service.methods[0];
  if (!method) throw new Error("reflection service without a method");
  const input = protocol.message("ServerReflectionRequest");
  const output = protocol.message("ServerReflectionResponse");
  server.addService(
    {
      [method.localName]: {
        path: `/${protocol.service.typeName}/${method.name}`,
        requestStream: true,
        responseStream: true,
        requestSerialize: (m: Message) => Buffer.from(toBinary(input, m)),
        requestDeserialize: (b: Buffer) => fromBinary(input, b),
        responseSerialize: (m: Message) => Buffer.from(toBinary(output, m)),
        responseDeserialize: (b: Buffer) => fromBinary(output, b),
      },
    },
    {
      [method.localName]: (call: grpc.ServerDuplexStream<Message, Message>) => {
        const sent = new Set<string>();
        open.add(call);
        call.on("close", () => open.delete(call));
        call.on("data", (req: ReflectionRequest) => {
          call.write(
            create(output, {
              validHost: req.host,
              originalRequest: req,
              messageResponse: answer(index, req, sent),
            } as never),
          );
        });
        call.on("end", () => call.end());
        call.on("error", () => call.end());
      },
    },
  );
}

/**
 * Adds grpc.reflection.v1 and v1alpha for `services` (and the reflection services) to `server`;
 * returns a function that ends the open reflection streams, so a graceful shutdown need not
 * wait for a client that keeps one open.
 */
export function addReflection(server: grpc.Server, services: readonly DescService[]): () => void {
  const v1 = reflectionProtocol("v1");
  const v1alpha = reflectionProtocol("v1alpha");
  const index = new ReflectionIndex([...services, v1.service, v1alpha.service]);
  const open = new Set<grpc.ServerDuplexStream<Message, Message>>();
  addProtocol(server, v1, index, open);
  addProtocol(server, v1alpha, index, open);
  return () => {
    for (const call of open) call.end();
    open.clear();
  };
}
