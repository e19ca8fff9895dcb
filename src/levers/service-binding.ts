/**
 * A lever's service as the ports serve it: its handlers, plain synchronous functions of the
 * request, and the methods that need the operator token. The levers build these; the server
 * layer runs them, so the types live here and imports run one way (server -> levers).
 */
import type {
  DescMethodUnary,
  DescService,
  MessageInitShape,
  MessageShape,
} from "@bufbuild/protobuf";

/** A lever's handlers for one service: plain synchronous functions of the request. */
export type UnaryHandlers<S extends DescService> = {
  [K in keyof S["method"]]: S["method"][K] extends DescMethodUnary<infer I, infer O>
    ? (request: MessageShape<I>) => MessageInitShape<O>
    : never;
};

/** A service with its handlers and the methods that need the operator token. */
export interface ServiceBinding<S extends DescService = DescService> {
  service: S;
  handlers: UnaryHandlers<S>;
  admin: ReadonlySet<string>;
}

/** Binds handlers to a service; `admin` names the methods that need the operator token. */
export function bindService<S extends DescService>(
  service: S,
  handlers: UnaryHandlers<S>,
  admin: readonly (keyof S["method"] & string)[] = [],
): ServiceBinding {
  return { service, handlers, admin: new Set(admin) } as unknown as ServiceBinding;
}
