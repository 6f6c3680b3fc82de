// Forwards /functions/v1/* to the local edge runtime (Deno), streaming both ways, as the
// hosted gateway forwards to Supabase's edge runtime.
import http from "node:http";

export function createFunctionsProxy(upstream: string) {
  const target = new URL(upstream);
  return (req: http.IncomingMessage, res: http.ServerResponse) => {
    // An IPv4 client on a dual-stack socket shows as ::ffff:a.b.c.d; Cloudflare sends a.b.c.d.
    const peer = req.socket.remoteAddress?.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/, "") ?? "";
    const out = http.request(
      {
        hostname: target.hostname,
        port: target.port,
        method: req.method,
        path: req.url,
        headers: {
          ...req.headers,
          // Append the peer, as a proxy does: the client's own chain (if any) stays in front.
          "x-forwarded-for": [req.headers["x-forwarded-for"], peer].filter(Boolean).join(", "),
          // As Cloudflare does in front of a hosted project: the peer's address, never the client's say.
          "cf-connecting-ip": peer,
        },
      },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      },
    );
    // A client that goes away mid-response closes the upstream connection too, as the hosted
    // gateway does: the function sees its request aborted (a streaming answer stops there).
    res.on("close", () => {
      if (!res.writableFinished) out.destroy();
    });
    out.on("error", (err) => {
      if (res.headersSent) return res.destroy(err);
      res.writeHead(502, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: { code: "bad_gateway", message: "the edge runtime is not answering" } }));
    });
    req.pipe(out);
  };
}
