// Supabase Realtime stand-in: Phoenix channels over WebSocket at /realtime/v1/websocket (both
// serializers), Broadcast (from clients, from the database over logical replication, over REST,
// and replayed on private joins), Presence, and private channels authorized by RLS on
// realtime.messages as the caller, with token expiry and refresh. Not served: Postgres Changes
// (joins that ask get a `system` error saying so), Realtime's rate limits other than channels
// per socket, and the REST API's `persist`. Local only; a hosted project runs the real server.
import type http from "node:http";
import type { Duplex } from "node:stream";
import { WebSocketServer } from "ws";
import type { PlatformContext } from "../context.ts";
import type { RealtimeDeps } from "./host.ts";
import { createBroadcastApi } from "./http-broadcast.ts";
import { startReplication } from "./replication.ts";
import { Rooms } from "./rooms.ts";
import type { Vsn } from "./serializer.ts";
import { Connection } from "./socket.ts";
import { checkToken } from "./tokens.ts";

export interface RealtimeServer {
  /** The WebSocket upgrade of /realtime/v1/websocket. */
  handleUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): void;
  /** HTTP under /realtime/v1/api (broadcast over REST). */
  handleHttp(req: http.IncomingMessage, res: http.ServerResponse): void;
  close(): Promise<void>;
}

export interface RealtimeOptions {
  /** Broadcast and presence payload limit; hosted Free projects allow 256 KB. */
  maxPayloadBytes?: number;
}

/** Phoenix's websocket transport: idle timeout and largest frame. */
const IDLE_TIMEOUT_MS = 60_000;
const MAX_FRAME_BYTES = 5_000_000;

function refuseUpgrade(socket: Duplex, status: number, text: string, error: string) {
  const body = JSON.stringify({ error });
  socket.end(
    `HTTP/1.1 ${status} ${text}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
}

export async function createRealtime(ctx: PlatformContext, opts: RealtimeOptions = {}): Promise<RealtimeServer> {
  const log = (line: string) => ctx.log("realtime", line);
  const rooms = new Rooms();
  const deps: RealtimeDeps = {
    pool: ctx.pool,
    verifier: ctx.verifier,
    rooms,
    log,
    maxPayloadBytes: opts.maxPayloadBytes ?? 256 * 1024,
    maxChannelsPerSocket: 100,
  };
  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_FRAME_BYTES, perMessageDeflate: false });
  const connections = new Set<Connection>();
  let closing = false;

  const replication = await startReplication({
    dbUrl: ctx.dbUrl,
    pool: ctx.pool,
    log,
    onMessage: (m) => {
      // A user broadcast with meta.id, as realtime-js hands it to .on("broadcast", {event}).
      const value = m.payload;
      rooms.publish(m.private, m.topic, {
        kind: "user",
        event: m.event,
        encoding: 1,
        body: Buffer.from(JSON.stringify(value)),
        meta: { id: m.id },
        value,
      });
    },
  });

  const sweep = setInterval(() => {
    const cutoff = Date.now() - IDLE_TIMEOUT_MS;
    for (const c of connections) if (c.lastSeen < cutoff) c.close(1000, "idle timeout");
  }, 5_000);
  sweep.unref();

  const broadcastApi = createBroadcastApi(deps);

  async function upgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer) {
    const url = new URL(req.url ?? "/", "http://realtime.local");
    const vsn = url.searchParams.get("vsn") ?? "1.0.0";
    if (vsn !== "1.0.0" && vsn !== "2.0.0") return refuseUpgrade(socket, 403, "Forbidden", `Unsupported serializer version: ${vsn}`);
    const header = req.headers["x-api-key"];
    const apiKey = (typeof header === "string" ? header : undefined) ?? url.searchParams.get("apikey");
    if (!apiKey) return refuseUpgrade(socket, 401, "Unauthorized", "API key is missing");
    const check = await checkToken(ctx.verifier, apiKey);
    if (!check.ok) return refuseUpgrade(socket, 401, "Unauthorized", check.message);
    if (closing || socket.destroyed) return refuseUpgrade(socket, 503, "Service Unavailable", "Realtime is restarting, please standby");
    const xHeaders: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers)) if (k.startsWith("x-") && typeof v === "string") xHeaders[k] = v;
    wss.handleUpgrade(req, socket, head, (ws) => {
      connections.add(new Connection(ws, vsn as Vsn, apiKey, xHeaders, deps, (c) => connections.delete(c)));
    });
  }

  return {
    handleUpgrade(req, socket, head) {
      socket.on("error", () => {}); // a client that hangs up mid-handshake is not our error
      upgrade(req, socket, head).catch((err: Error) => {
        log(`upgrade failed: ${err.message}`);
        if (!socket.destroyed) refuseUpgrade(socket, 500, "Internal Server Error", "Unknown error");
      });
    },
    handleHttp(req, res) {
      broadcastApi(req, res).catch((err: Error) => {
        log(`broadcast API failed: ${err.stack ?? err.message}`);
        if (!res.headersSent) res.writeHead(500, { "content-type": "application/json" }).end(JSON.stringify({ message: "Internal error" }));
      });
    },
    async close() {
      closing = true;
      clearInterval(sweep);
      for (const c of [...connections]) c.close(1001, "server shutting down");
      // Give clients a moment to answer the close frames, then cut whoever did not.
      for (let i = 0; i < 50 && wss.clients.size > 0; i++) await new Promise((r) => setTimeout(r, 20));
      for (const ws of wss.clients) ws.terminate();
      await replication.stop();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}
