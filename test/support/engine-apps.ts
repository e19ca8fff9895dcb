/**
 * Real engine apps for the engine library's tests: Express, Fastify and node:http servers on
 * loopback port 0, each with the same three routes behind the go-live middleware.
 */
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import express from "express";
import Fastify from "fastify";
import type { Engine, RouteTable } from "../../packages/engine/src/index.js";

/** The routes every test app serves, and their classes (GET /deals is left to the default). */
export const ROUTES: RouteTable = {
  "GET /health": "EXEMPT",
  "POST /deals/:id/execute": "PROD_EXEC",
};

/** A running engine app. */
export interface EngineApp {
  name: string;
  url: string;
  close(): Promise<void>;
}

/** Express with `app.use(govd.express(ROUTES))`. */
export async function expressApp(govd: Engine): Promise<EngineApp> {
  const app = express();
  app.use(govd.express(ROUTES));
  app.get("/health", (_req, res) => {
    res.json({ ok: true });
  });
  app.get("/deals", (_req, res) => {
    res.json({ deals: [] });
  });
  app.post("/deals/:id/execute", (req, res) => {
    res.json({ executed: req.params.id });
  });
  const server = app.listen(0, "127.0.0.1");
  await new Promise((resolve) => server.once("listening", resolve));
  return {
    name: "express",
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/** Fastify with `app.addHook("onRequest", govd.fastify(ROUTES))`. */
export async function fastifyApp(govd: Engine): Promise<EngineApp> {
  const app = Fastify();
  app.addHook("onRequest", govd.fastify(ROUTES));
  app.get("/health", async () => ({ ok: true }));
  app.get("/deals", async () => ({ deals: [] }));
  app.post<{ Params: { id: string } }>("/deals/:id/execute", async (req) => ({
    executed: req.params.id,
  }));
  const url = await app.listen({ port: 0, host: "127.0.0.1" });
  return { name: "fastify", url, close: () => app.close() };
}

/** node:http with `if (guard(req, res)) return;` first in the listener. */
export async function nodeApp(govd: Engine): Promise<EngineApp> {
  const guard = govd.node(ROUTES);
  const server = http.createServer((req, res) => {
    if (guard(req, res)) return;
    const executed = /^\/deals\/([^/]+)\/execute$/.exec(req.url ?? "")?.[1];
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify(executed ? { executed } : { ok: true }));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    name: "node:http",
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
