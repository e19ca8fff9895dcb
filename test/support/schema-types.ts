/** Message types to test encoders against: every type of our schema, and run-time ones. */
import { create, createFileRegistry, type DescFile, type DescMessage } from "@bufbuild/protobuf";
import {
  FileDescriptorProtoSchema,
  FieldDescriptorProto_Label as Label,
  FieldDescriptorProto_Type as Type,
} from "@bufbuild/protobuf/wkt";
import { file_governance_v1_common } from "../../gen/governance/v1/common_pb.js";
import { file_governance_v1_golive } from "../../gen/governance/v1/golive_pb.js";
import { file_governance_v1_heimdall } from "../../gen/governance/v1/heimdall_pb.js";
import { file_governance_v1_regression } from "../../gen/governance/v1/regression_pb.js";
import { file_governance_v1_risk } from "../../gen/governance/v1/risk_pb.js";
import { file_governance_v1_sync } from "../../gen/governance/v1/sync_pb.js";

/** Every message type of the files, nested ones and the types their fields hold. */
export function typesOf(files: DescFile[]): DescMessage[] {
  const found = new Set<DescMessage>();
  const visit = (m: DescMessage) => {
    if (found.has(m)) return;
    found.add(m);
    for (const n of m.nestedMessages) visit(n);
    for (const f of m.fields) if (f.message) visit(f.message);
  };
  for (const file of files) for (const m of file.messages) visit(m);
  return [...found].filter((m) => !m.proto.options?.mapEntry);
}

/** Every message type of our schema. */
export const OUR_TYPES = typesOf([
  file_governance_v1_common,
  file_governance_v1_golive,
  file_governance_v1_heimdall,
  file_governance_v1_regression,
  file_governance_v1_risk,
  file_governance_v1_sync,
]);

/** Scalar field types, each with a field of each kind in the run-time types. */
export const SCALARS: [string, Type][] = [
  ["double", Type.DOUBLE],
  ["float", Type.FLOAT],
  ["int64", Type.INT64],
  ["uint64", Type.UINT64],
  ["int32", Type.INT32],
  ["fixed64", Type.FIXED64],
  ["fixed32", Type.FIXED32],
  ["bool", Type.BOOL],
  ["string", Type.STRING],
  ["bytes", Type.BYTES],
  ["uint32", Type.UINT32],
  ["sfixed32", Type.SFIXED32],
  ["sfixed64", Type.SFIXED64],
  ["sint32", Type.SINT32],
  ["sint64", Type.SINT64],
];

/** A file of run-time types: every scalar singular, optional and repeated; an enum, maps, a oneof. */
export function runtimeTypes(syntax: "proto2" | "proto3") {
  const optional = syntax === "proto2" ? Label.OPTIONAL : Label.OPTIONAL;
  const field: object[] = [];
  SCALARS.forEach(([name, type], i) => {
    field.push({ name: `s_${name}`, number: i + 1, type, label: optional });
    field.push({ name: `r_${name}`, number: i + 101, type, label: Label.REPEATED });
    if (syntax === "proto3") {
      field.push({
        name: `o_${name}`,
        number: i + 201,
        type,
        label: Label.OPTIONAL,
        proto3Optional: true,
        oneofIndex: i + 1,
      });
    }
  });
  const oneofs = syntax === "proto3" ? SCALARS.map(([name]) => ({ name: `_o_${name}` })) : [];
  field.push(
    { name: "e", number: 301, type: Type.ENUM, typeName: ".t.E", label: optional },
    { name: "re", number: 302, type: Type.ENUM, typeName: ".t.E", label: Label.REPEATED },
    { name: "child", number: 303, type: Type.MESSAGE, typeName: ".t.M", label: optional },
    { name: "children", number: 304, type: Type.MESSAGE, typeName: ".t.M", label: Label.REPEATED },
    {
      name: "names",
      number: 305,
      type: Type.MESSAGE,
      typeName: ".t.M.NamesEntry",
      label: Label.REPEATED,
    },
    {
      name: "kids",
      number: 306,
      type: Type.MESSAGE,
      typeName: ".t.M.KidsEntry",
      label: Label.REPEATED,
    },
    { name: "c_text", number: 307, type: Type.STRING, label: Label.OPTIONAL, oneofIndex: 0 },
    {
      name: "c_kid",
      number: 308,
      type: Type.MESSAGE,
      typeName: ".t.M",
      label: Label.OPTIONAL,
      oneofIndex: 0,
    },
    { name: "c_num", number: 309, type: Type.SINT64, label: Label.OPTIONAL, oneofIndex: 0 },
    // Unpacked in proto3 too, by option.
    {
      name: "u_int32",
      number: 310,
      type: Type.INT32,
      label: Label.REPEATED,
      options: { packed: false },
    },
  );
  const entry = (name: string, value: object) => ({
    name,
    field: [
      { name: "key", number: 1, type: Type.STRING, label: Label.OPTIONAL },
      { name: "value", number: 2, label: Label.OPTIONAL, ...value },
    ],
    options: { mapEntry: true },
  });
  const registry = createFileRegistry(
    create(FileDescriptorProtoSchema, {
      name: `run-time-${syntax}.proto`,
      package: "t",
      syntax,
      enumType: [
        {
          name: "E",
          value: [
            { name: "E_ZERO", number: 0 },
            { name: "E_ONE", number: 1 },
            { name: "E_MINUS", number: -1 },
          ],
        },
      ],
      messageType: [
        {
          name: "M",
          field,
          oneofDecl: [{ name: "choice" }, ...oneofs],
          nestedType: [
            entry("NamesEntry", { type: Type.UINT64 }),
            entry("KidsEntry", { type: Type.MESSAGE, typeName: ".t.M" }),
          ],
        },
      ],
    } as never),
    () => undefined,
  );
  return registry.getMessage("t.M") as DescMessage;
}
