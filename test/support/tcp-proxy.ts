/**
 * A loopback TCP proxy a test can cut (every connection reset, new ones refused), freeze
 * (connections stay open but carry nothing: a silent stall) and restore: the network between
 * an engine and its sidecar, without touching either.
 */
import * as net from "node:net";

/** A running proxy and its switches. */
export interface TcpProxy {
  address: string;
  cut(): void;
  freeze(): void;
  restore(): void;
  close(): Promise<void>;
}

/** Starts a proxy on 127.0.0.1:0 to `target` (host:port). */
export async function startTcpProxy(target: string): Promise<TcpProxy> {
  const [host, port] = target.split(":") as [string, string];
  const pairs = new Set<[net.Socket, net.Socket]>();
  let mode: "open" | "cut" | "frozen" = "open";
  const server = net.createServer((client) => {
    if (mode === "cut") {
      client.resetAndDestroy();
      return;
    }
    const upstream = net.connect(Number(port), host);
    const pair: [net.Socket, net.Socket] = [client, upstream];
    pairs.add(pair);
    client.pipe(upstream);
    upstream.pipe(client);
    const drop = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on("error", drop).on("close", drop);
    upstream.on("error", drop).on("close", drop);
    if (mode === "frozen") for (const s of pair) s.pause();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port: bound } = server.address() as net.AddressInfo;
  return {
    address: `127.0.0.1:${bound}`,
    cut() {
      mode = "cut";
      for (const [c, u] of pairs) {
        c.resetAndDestroy();
        u.destroy();
      }
    },
    freeze() {
      mode = "frozen";
      for (const pair of pairs) for (const s of pair) s.pause();
    },
    restore() {
      mode = "open";
      for (const pair of pairs) for (const s of pair) s.resume();
    },
    async close() {
      for (const [c, u] of pairs) {
        c.destroy();
        u.destroy();
      }
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
