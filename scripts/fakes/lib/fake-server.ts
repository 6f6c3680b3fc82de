// The frame every local fake of a paid partner shares: an HTTP server whose routes speak the
// partner's wire format, per-key scripts that tell the next request how to behave (succeed,
// 429, 500, time out, cut a stream, ...), and a control API under /__fake that tests in other
// processes use to script it and to read what it received. Local development and tests only.
//
//   POST /__fake/script   { key, steps: [{ mode, ...options }] }   queue steps for a key
//   POST /__fake/reset    { key? }                                 forget steps (and calls) of a key, or all
//   GET  /__fake/calls?key=K                                       requests recorded for a key, oldest first
//
// A key is what the provider module derives from a request, usually "<provider>:<model>", so
// tests that use their own model names never see each other's scripts.
import http from "node:http";
import type { AddressInfo } from "node:net";

export interface Step {
  /** What to do; each provider documents its modes (ok, stream, rate_limit, server_error, timeout, ...). */
  mode: string;
  [option: string]: unknown;
}

export interface RecordedCall {
  key: string;
  method: string;
  path: string;
  headers: Record<string, string>;
  body: unknown;
  at: number;
}

export interface FakeRequest {
  req: http.IncomingMessage;
  res: http.ServerResponse;
  url: URL;
  /** The path's regex groups. */
  params: string[];
  raw: Buffer;
  /** The body parsed as JSON (undefined when it is not JSON). */
  json: any;
  /** The next scripted step for this key (default { mode: "ok" }), and records the call under it. */
  take(key: string): Step;
  /** Records the call under a key without consuming a step (polls, reads). */
  record(key: string): void;
  server: FakeServerState;
}

export interface FakeRoute {
  method: string;
  path: RegExp;
  handle(r: FakeRequest): void | Promise<void>;
}

export interface FakeServerState {
  /** The server's own base URL (for URLs it hands out, such as generated files). */
  url: string;
  /** Per-provider in-memory state (tasks, files). */
  data: Map<string, unknown>;
}

export interface FakeServer {
  url: string;
  port: number;
  close(): Promise<void>;
}

export async function startFakeServer(opts: { name: string; port?: number; routes: FakeRoute[] }): Promise<FakeServer> {
  const scripts = new Map<string, Step[]>();
  const calls: RecordedCall[] = [];
  const state: FakeServerState = { url: "", data: new Map() };

  const server = http.createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks);
    const url = new URL(req.url ?? "/", state.url);
    let json: any;
    try {
      json = raw.length ? JSON.parse(raw.toString("utf8")) : undefined;
    } catch {
      json = undefined;
    }
    try {
      if (url.pathname.startsWith("/__fake/")) return control(url, req.method ?? "GET", json, res);
      for (const route of opts.routes) {
        if (route.method !== req.method) continue;
        const m = route.path.exec(url.pathname);
        if (!m) continue;
        const record = (key: string) => {
          calls.push({ key, method: req.method ?? "", path: url.pathname + url.search, headers: flatHeaders(req.headers), body: json ?? raw.toString("utf8"), at: Date.now() });
        };
        await route.handle({
          req, res, url, params: m.slice(1), raw, json, server: state, record,
          take(key) {
            record(key);
            return scripts.get(key)?.shift() ?? { mode: "ok" };
          },
        });
        return;
      }
      sendJson(res, 404, { error: { message: `${opts.name} fake: no route ${req.method} ${url.pathname}` } });
    } catch (err) {
      if (!res.headersSent) sendJson(res, 500, { error: { message: `${opts.name} fake crashed: ${(err as Error).message}` } });
      else res.destroy();
    }
  });

  function control(url: URL, method: string, body: any, res: http.ServerResponse) {
    if (method === "POST" && url.pathname === "/__fake/script") {
      const key = String(body?.key ?? "");
      scripts.set(key, [...(scripts.get(key) ?? []), ...((body?.steps ?? []) as Step[])]);
      return sendJson(res, 200, { key, queued: scripts.get(key)!.length });
    }
    if (method === "POST" && url.pathname === "/__fake/reset") {
      if (body?.key) {
        scripts.delete(body.key);
        for (let i = calls.length - 1; i >= 0; i--) if (calls[i].key === body.key) calls.splice(i, 1);
      } else {
        scripts.clear();
        calls.length = 0;
      }
      return sendJson(res, 200, { ok: true });
    }
    if (method === "GET" && url.pathname === "/__fake/calls") {
      const key = url.searchParams.get("key");
      return sendJson(res, 200, calls.filter((c) => !key || c.key === key));
    }
    sendJson(res, 404, { error: { message: "unknown control route" } });
  }

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, "127.0.0.1", () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  state.url = `http://127.0.0.1:${port}`;
  return {
    url: state.url,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A provider's in-memory state on the server (`data` under `key`), made by `init` on first use. */
export function serverData<T>(server: FakeServerState, key: string, init: () => T): T {
  let value = server.data.get(key) as T | undefined;
  if (value === undefined) {
    value = init();
    server.data.set(key, value);
  }
  return value;
}

export function sendJson(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text), ...headers });
  res.end(text);
}

/** Never answers: the caller's own timeout is what ends the request. */
export function hang(res: http.ServerResponse): void {
  res.on("close", () => {});
}

function flatHeaders(h: http.IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h)) if (v !== undefined) out[k] = Array.isArray(v) ? v.join(", ") : v;
  return out;
}
