/**
 * The standard gRPC protocols govd serves beside its own services (server reflection v1 and
 * v1alpha, health v1), described as protobuf-es descriptors built in code. Their .proto files are
 * tiny and fixed, so describing them here keeps proto/ (our contract, buf lint STANDARD) and gen/
 * free of third-party schemas.
 */
import {
  create,
  createFileRegistry,
  type DescMessage,
  type DescService,
  type MessageInitShape,
} from "@bufbuild/protobuf";
import {
  type DescriptorProto,
  type FieldDescriptorProto,
  FileDescriptorProtoSchema,
  FieldDescriptorProto_Label as Label,
  FieldDescriptorProto_Type as Type,
} from "@bufbuild/protobuf/wkt";

type FieldInit = MessageInitShape<
  typeof import("@bufbuild/protobuf/wkt").FieldDescriptorProtoSchema
>;

function field(
  name: string,
  number: number,
  type: Type,
  extra: Partial<Pick<FieldDescriptorProto, "typeName" | "oneofIndex">> & {
    repeated?: boolean;
  } = {},
): FieldInit {
  const { repeated, ...rest } = extra;
  return {
    name,
    number,
    type,
    label: repeated ? Label.REPEATED : Label.OPTIONAL,
    jsonName: name.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase()),
    ...rest,
  };
}

type MessageInit = MessageInitShape<typeof import("@bufbuild/protobuf/wkt").DescriptorProtoSchema>;

function reflectionMessages(pkg: string): MessageInit[] {
  const t = (n: string) => `.${pkg}.${n}`;
  const msg = Type.MESSAGE;
  const oneof = (typeName: string | undefined) => ({ oneofIndex: 0, typeName });
  return [
    {
      name: "ServerReflectionRequest",
      field: [
        field("host", 1, Type.STRING),
        field("file_by_filename", 3, Type.STRING, oneof(undefined)),
        field("file_containing_symbol", 4, Type.STRING, oneof(undefined)),
        field("file_containing_extension", 5, msg, oneof(t("ExtensionRequest"))),
        field("all_extension_numbers_of_type", 6, Type.STRING, oneof(undefined)),
        field("list_services", 7, Type.STRING, oneof(undefined)),
      ],
      oneofDecl: [{ name: "message_request" }],
    },
    {
      name: "ExtensionRequest",
      field: [field("containing_type", 1, Type.STRING), field("extension_number", 2, Type.INT32)],
    },
    {
      name: "ServerReflectionResponse",
      field: [
        field("valid_host", 1, Type.STRING),
        field("original_request", 2, msg, { typeName: t("ServerReflectionRequest") }),
        field("file_descriptor_response", 4, msg, oneof(t("FileDescriptorResponse"))),
        field("all_extension_numbers_response", 5, msg, oneof(t("ExtensionNumberResponse"))),
        field("list_services_response", 6, msg, oneof(t("ListServiceResponse"))),
        field("error_response", 7, msg, oneof(t("ErrorResponse"))),
      ],
      oneofDecl: [{ name: "message_response" }],
    },
    {
      name: "FileDescriptorResponse",
      field: [field("file_descriptor_proto", 1, Type.BYTES, { repeated: true })],
    },
    {
      name: "ExtensionNumberResponse",
      field: [
        field("base_type_name", 1, Type.STRING),
        field("extension_number", 2, Type.INT32, { repeated: true }),
      ],
    },
    {
      name: "ListServiceResponse",
      field: [field("service", 1, msg, { typeName: t("ServiceResponse"), repeated: true })],
    },
    { name: "ServiceResponse", field: [field("name", 1, Type.STRING)] },
    {
      name: "ErrorResponse",
      field: [field("error_code", 1, Type.INT32), field("error_message", 2, Type.STRING)],
    },
  ];
}

function fileOf(name: string, pkg: string, messages: MessageInit[], service: object, enums = []) {
  return create(FileDescriptorProtoSchema, {
    name,
    package: pkg,
    syntax: "proto3",
    messageType: messages as DescriptorProto[],
    enumType: enums,
    service: [service],
  });
}

/** The descriptors of one standard service: the service and its request/response messages. */
export interface StandardService {
  service: DescService;
  message: (name: string) => DescMessage;
}

function load(file: ReturnType<typeof fileOf>, serviceName: string): StandardService {
  const registry = createFileRegistry(file, () => undefined);
  const service = registry.getService(`${file.package}.${serviceName}`);
  if (!service) throw new Error(`${serviceName} missing from ${file.name}`);
  return {
    service,
    message(name) {
      const m = registry.getMessage(`${file.package}.${name}`);
      if (!m) throw new Error(`${name} missing from ${file.name}`);
      return m;
    },
  };
}

/** grpc.reflection.v1.ServerReflection or grpc.reflection.v1alpha.ServerReflection. */
export function reflectionProtocol(version: "v1" | "v1alpha"): StandardService {
  const pkg = `grpc.reflection.${version}`;
  const service = {
    name: "ServerReflection",
    method: [
      {
        name: "ServerReflectionInfo",
        inputType: `.${pkg}.ServerReflectionRequest`,
        outputType: `.${pkg}.ServerReflectionResponse`,
        clientStreaming: true,
        serverStreaming: true,
      },
    ],
  };
  return load(
    fileOf(`grpc/reflection/${version}/reflection.proto`, pkg, reflectionMessages(pkg), service),
    "ServerReflection",
  );
}

/** grpc.health.v1.Health (Check and Watch). */
export function healthProtocol(): StandardService {
  const pkg = "grpc.health.v1";
  const messages: MessageInit[] = [
    { name: "HealthCheckRequest", field: [field("service", 1, Type.STRING)] },
    {
      name: "HealthCheckResponse",
      field: [
        field("status", 1, Type.ENUM, { typeName: `.${pkg}.HealthCheckResponse.ServingStatus` }),
      ],
      enumType: [
        {
          name: "ServingStatus",
          value: [
            { name: "UNKNOWN", number: 0 },
            { name: "SERVING", number: 1 },
            { name: "NOT_SERVING", number: 2 },
            { name: "SERVICE_UNKNOWN", number: 3 },
          ],
        },
      ],
    },
  ];
  const method = (name: string, serverStreaming: boolean) => ({
    name,
    inputType: `.${pkg}.HealthCheckRequest`,
    outputType: `.${pkg}.HealthCheckResponse`,
    serverStreaming,
  });
  const service = { name: "Health", method: [method("Check", false), method("Watch", true)] };
  return load(fileOf("grpc/health/v1/health.proto", pkg, messages, service), "Health");
}
