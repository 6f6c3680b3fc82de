// Supabase Realtime stand-in (Phoenix channels over WebSocket, Broadcast, Presence). See docs/platform.md.
import type http from "node:http";
import type { Duplex } from "node:stream";
import type { PlatformContext } from "../context.ts";

export interface RealtimeServer {
  /** The WebSocket upgrade of /realtime/v1/websocket. */
  handleUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): void;
  /** HTTP under /realtime/v1/api (broadcast over REST). */
  handleHttp(req: http.IncomingMessage, res: http.ServerResponse): void;
  close(): Promise<void>;
}

export async function createRealtime(_ctx: PlatformContext): Promise<RealtimeServer> {
  return {
    handleUpgrade(_req, socket) {
      socket.end("HTTP/1.1 501 Not Implemented\r\nconnection: close\r\n\r\n");
    },
    handleHttp(_req, res) {
      res.writeHead(501, { "content-type": "application/json" });
      res.end(JSON.stringify({ message: "realtime stand-in not built yet" }));
    },
    async close() {},
  };
}
