// Supabase Storage stand-in (REST API + TUS resumable uploads). See docs/platform.md.
import type http from "node:http";
import type { PlatformContext } from "../context.ts";

export interface StorageServer {
  /** Handles every request under /storage/v1 (the path still carries the prefix). */
  handle(req: http.IncomingMessage, res: http.ServerResponse): void;
  close(): Promise<void>;
}

export async function createStorage(_ctx: PlatformContext): Promise<StorageServer> {
  return {
    handle(_req, res) {
      res.writeHead(501, { "content-type": "application/json" });
      res.end(JSON.stringify({ statusCode: "501", error: "Not Implemented", message: "storage stand-in not built yet" }));
    },
    async close() {},
  };
}
