// One port, as a hosted project's URL: /functions/v1 (the Deno edge runtime), /storage/v1 and
// /realtime/v1 (the local stand-ins). Local only: on a hosted project Supabase runs all three.
import http from "node:http";
import type { Duplex } from "node:stream";
import pg from "pg";
import { createTokenVerifier } from "./auth.ts";
import type { PlatformContext } from "./context.ts";
import { createFunctionsProxy } from "./functions-proxy.ts";
import { createRealtime } from "./realtime/index.ts";
import { createStorage } from "./storage/index.ts";

export interface GatewayOptions {
  port: number;
  dbUrl: string;
  jwtSecret: string;
  /** Where asymmetric user JWTs are verified (the project's JWKS), if any. */
  jwksUrl?: string;
  dataDir: string;
  /** The edge runtime's own address, e.g. http://127.0.0.1:54328. */
  functionsUpstream: string;
  log: (source: string, line: string) => void;
}

export interface Gateway {
  url: string;
  close(): Promise<void>;
}

export async function startGateway(opts: GatewayOptions): Promise<Gateway> {
  const publicUrl = `http://127.0.0.1:${opts.port}`;
  const pool = new pg.Pool({ connectionString: opts.dbUrl, max: 20 });
  pool.on("error", (err) => opts.log("platform", `idle connection error: ${err.message}`));
  const ctx: PlatformContext = {
    pool,
    dbUrl: opts.dbUrl,
    jwtSecret: opts.jwtSecret,
    verifier: createTokenVerifier({ jwtSecret: opts.jwtSecret, jwksUrl: opts.jwksUrl }),
    dataDir: opts.dataDir,
    publicUrl,
    log: opts.log,
  };
  const storage = await createStorage(ctx);
  const realtime = await createRealtime(ctx);
  const functions = createFunctionsProxy(opts.functionsUpstream);

  const server = http.createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (path.startsWith("/functions/v1/")) return functions(req, res);
    if (path === "/storage/v1" || path.startsWith("/storage/v1/")) return storage.handle(req, res);
    if (path.startsWith("/realtime/v1/")) return realtime.handleHttp(req, res);
    res.writeHead(404, { "content-type": "application/json" });
    res.end(JSON.stringify({ message: "no Route matched with those values" }));
  });
  server.on("upgrade", (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    const path = (req.url ?? "/").split("?")[0];
    if (path === "/realtime/v1/websocket") return realtime.handleUpgrade(req, socket, head);
    socket.end("HTTP/1.1 404 Not Found\r\nconnection: close\r\n\r\n");
  });
  // Many long-lived WebSockets; Node's default request timeouts must not cut them.
  server.requestTimeout = 0;
  server.headersTimeout = 60_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port, "127.0.0.1", () => resolve());
  });
  opts.log("platform", `gateway on ${publicUrl} (functions, storage, realtime)`);

  return {
    url: publicUrl,
    async close() {
      await realtime.close();
      await storage.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await pool.end();
    },
  };
}
