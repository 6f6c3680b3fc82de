// POSTs to an address that was already checked (ssrf.ts), whatever DNS says now: node:http(s)
// with a lookup that returns only that address. The hostname still drives the Host header, SNI
// and certificate checks. Redirects are not followed; at most `maxBody` characters are read.
import http from "node:http";
import https from "node:https";

export interface PinnedResponse {
  status: number;
  retryAfter: string | null;
  snippet: string;
}

export function pinnedPost(
  url: URL,
  address: string,
  init: { headers: Record<string, string>; body: string; signal: AbortSignal; maxBody: number },
): Promise<PinnedResponse> {
  const family = address.includes(":") ? 6 : 4;
  const client = url.protocol === "https:" ? https : http;
  return new Promise((resolve, reject) => {
    const req = client.request(
      {
        protocol: url.protocol,
        hostname: url.hostname.replace(/^\[|\]$/g, ""),
        port: url.port || undefined,
        path: `${url.pathname}${url.search}`,
        method: "POST",
        headers: { ...init.headers, "content-length": String(new TextEncoder().encode(init.body).length) },
        signal: init.signal,
        // Node calls this instead of DNS; `all` asks for the list form.
        lookup: (_host, opts, cb) => {
          if ((opts as { all?: boolean }).all) (cb as (e: null, a: { address: string; family: number }[]) => void)(null, [{ address, family }]);
          else (cb as (e: null, a: string, f: number) => void)(null, address, family);
        },
      },
      (res) => {
        let snippet = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          snippet += chunk;
          if (snippet.length >= init.maxBody) res.destroy(); // the rest is not needed
        });
        // "close" follows the end of the body, our early destroy() and any stream error alike;
        // the status is what counts, so a cut-short body is still a result.
        res.on("error", () => {});
        res.on("close", () =>
          resolve({
            status: res.statusCode ?? 0,
            retryAfter: (res.headers["retry-after"] as string | undefined) ?? null,
            snippet: snippet.slice(0, init.maxBody),
          }));
      },
    );
    req.on("error", reject);
    req.end(init.body);
  });
}
