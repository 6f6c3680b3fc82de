// Broadcast over REST, as realtime-js calls it (with the socket's query string still attached):
//   POST /realtime/v1/api/broadcast                          batch; 202; private messages the
//        caller may not send are skipped silently; an optional `id` becomes meta.id
//   POST /realtime/v1/api/broadcast/<topic>/events/<event>   one message, JSON or raw bytes;
//        202; private denial 403; other content types 415
// The token is the Bearer one, else the apikey header; it needs `role` and `exp`.
import type http from "node:http";
import { z } from "zod";
import { bearer } from "../auth.ts";
import { canWrite, type AuthContext } from "./authorization.ts";
import type { RealtimeDeps } from "./host.ts";
import { BINARY_ENCODING, JSON_ENCODING } from "./serializer.ts";
import { checkToken } from "./tokens.ts";

/** Phoenix's own frame limit; a request body beyond it is refused outright. */
const MAX_BODY_BYTES = 5_000_000;

const batchSchema = z.object({
  messages: z
    .array(
      z.object({
        topic: z.string().min(1),
        event: z.string().min(1),
        payload: z.record(z.string(), z.unknown()),
        private: z.boolean().optional(),
        id: z.uuid().optional(),
      }),
    )
    .min(1),
});

function send(res: http.ServerResponse, status: number, body?: unknown) {
  if (body === undefined) {
    res.writeHead(status).end();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) }).end(text);
}

function readBody(req: http.IncomingMessage): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) {
        resolve(null);
        req.destroy();
      } else chunks.push(c);
    });
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

function headersOf(req: http.IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(req.headers)) if (typeof v === "string") out[k] = v;
  return out;
}

export function createBroadcastApi(deps: RealtimeDeps) {
  async function authenticate(req: http.IncomingMessage): Promise<AuthContext | null> {
    const apikey = req.headers.apikey;
    const token = bearer(req.headers.authorization) ?? (typeof apikey === "string" ? apikey : undefined);
    if (!token) return null;
    const check = await checkToken(deps.verifier, token);
    return check.ok ? { claims: check.token.claims as Record<string, unknown>, headers: headersOf(req) } : null;
  }

  async function batch(req: http.IncomingMessage, res: http.ServerResponse, auth: AuthContext) {
    const body = await readBody(req);
    if (!body) return send(res, 413, { message: "Payload too large" });
    let json: unknown;
    try {
      json = JSON.parse(body.toString("utf8"));
    } catch {
      return send(res, 422, { message: "Invalid JSON body" });
    }
    const parsed = batchSchema.safeParse(json);
    if (!parsed.success) return send(res, 422, { message: "Invalid messages", errors: z.flattenError(parsed.error).fieldErrors });
    const { messages } = parsed.data;
    if (messages.some((m) => Buffer.byteLength(JSON.stringify(m.payload)) > deps.maxPayloadBytes)) {
      return send(res, 422, { message: "Payload size exceeded" });
    }
    const allowed = new Map<string, boolean>();
    for (const m of messages) {
      if (m.private) {
        if (!allowed.has(m.topic)) allowed.set(m.topic, await canWrite(deps.pool, auth, m.topic, "broadcast", deps.log));
        if (!allowed.get(m.topic)) continue;
      }
      const payload: Record<string, unknown> = { type: "broadcast", event: m.event, payload: m.payload };
      if (m.id) payload.meta = { id: m.id };
      deps.rooms.publish(m.private === true, m.topic, { kind: "text", payload });
    }
    send(res, 202);
  }

  async function single(req: http.IncomingMessage, res: http.ServerResponse, auth: AuthContext, topic: string, event: string, isPrivate: boolean) {
    const type = (req.headers["content-type"] ?? "").split(";")[0].trim().toLowerCase();
    if (type !== "application/json" && type !== "application/octet-stream") {
      req.resume();
      return send(res, 415, { message: "Unsupported content type" });
    }
    const body = await readBody(req);
    if (!body) return send(res, 413, { message: "Payload too large" });
    if (body.length > deps.maxPayloadBytes) return send(res, 422, { message: "Payload size exceeded" });
    let value: unknown;
    if (type === "application/json") {
      try {
        value = JSON.parse(body.toString("utf8"));
      } catch {
        return send(res, 422, { message: "Invalid JSON body" });
      }
    }
    if (isPrivate && !(await canWrite(deps.pool, auth, topic, "broadcast", deps.log))) {
      return send(res, 403, { message: "Unauthorized" });
    }
    const encoding = type === "application/json" ? JSON_ENCODING : BINARY_ENCODING;
    deps.rooms.publish(isPrivate, topic, { kind: "user", event, encoding, body, value });
    send(res, 202);
  }

  return async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://realtime.local");
    const path = url.pathname.replace(/^\/realtime\/v1/, "");
    const one = /^\/api\/broadcast\/([^/]+)\/events\/([^/]+)$/.exec(path);
    if (path !== "/api/broadcast" && !one) {
      req.resume();
      return send(res, 404, { message: "Not Found" });
    }
    if (req.method !== "POST") {
      req.resume();
      return send(res, 405, { message: "Method Not Allowed" });
    }
    const auth = await authenticate(req);
    if (!auth) {
      req.resume();
      return send(res, 401, { message: "Unauthorized" });
    }
    if (!one) return batch(req, res, auth);
    let topic: string, event: string;
    try {
      [topic, event] = [decodeURIComponent(one[1]), decodeURIComponent(one[2])];
    } catch {
      req.resume();
      return send(res, 400, { message: "Invalid topic or event in the path" });
    }
    return single(req, res, auth, topic, event, url.searchParams.get("private") === "true");
  };
}
