// A local webhook receiver for tests: records every request and answers as told.
import http from "node:http";
import type { AddressInfo } from "node:net";

export interface SunkRequest {
  headers: Record<string, string>;
  body: string;
}

export interface SinkReply {
  status: number;
  headers?: Record<string, string>;
  body?: string;
  /** Never answer (for timeouts). */
  hang?: boolean;
}

export interface WebhookSink {
  url: string;
  requests: SunkRequest[];
  /** Decides each reply; n is the 1-based request number. Defaults to 200. */
  reply: (n: number, req: SunkRequest) => SinkReply;
  /**
   * Resolves with every request so far once there are at least `count`; throws if that does not
   * happen within the budget (a generous one: the machine may be loaded, and the test asserts
   * what arrived, never how fast).
   */
  waitFor(count: number, timeoutMs?: number): Promise<SunkRequest[]>;
  close(): Promise<void>;
}

/** How long waitFor waits by default. */
export const SINK_WAIT_MS = 60_000;

export async function startSink(path = "/hooks"): Promise<WebhookSink> {
  const sink = { requests: [] as SunkRequest[], reply: (() => ({ status: 200, body: "ok" })) as WebhookSink["reply"] };
  const server = http.createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      const r: SunkRequest = { headers: req.headers as Record<string, string>, body };
      sink.requests.push(r);
      const out = sink.reply(sink.requests.length, r);
      if (out.hang) return;
      res.writeHead(out.status, out.headers);
      res.end(out.body ?? "");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return Object.assign(sink, {
    url: `http://127.0.0.1:${port}${path}`,
    async waitFor(count: number, timeoutMs = SINK_WAIT_MS) {
      const deadline = Date.now() + timeoutMs;
      while (sink.requests.length < count && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      if (sink.requests.length < count) {
        throw new Error(`the sink got ${sink.requests.length} request(s) within ${timeoutMs} ms, not ${count}`);
      }
      return sink.requests;
    },
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  });
}
