// Realtime from the client's side: supabase-js channels that resolve on SUBSCRIBED (or report
// the server's refusal), inboxes that wait for a matching message, and a raw `ws` socket for
// what the official client never sends. Every socket opened here is closed after the file.
import type { RealtimeChannel, SupabaseClient } from "@supabase/supabase-js";
import { afterAll, inject } from "vitest";
import WebSocket from "ws";
import { client } from "./supabase.ts";

const stack = inject("stack");
const clients: SupabaseClient[] = [];
const raws: WebSocket[] = [];
afterAll(async () => {
  await Promise.all(clients.map((c) => c.removeAllChannels().catch(() => {})));
  for (const ws of raws) ws.terminate();
});

/**
 * A supabase-js client whose realtime sockets are closed after the file. It waits for the
 * client's first token fetch, as an app with a loaded session has: realtime-js fixes a join's
 * payload when subscribe() is called, so a join sent before that would carry only the API key.
 */
export async function rtClient(opts: Parameters<typeof client>[0] = {}): Promise<SupabaseClient> {
  const c = client(opts);
  clients.push(c);
  if (opts.token) await c.realtime.setAuth();
  return c;
}

/** Messages as they arrive, with a wait for the first one that matches. */
export class Inbox<T> {
  readonly items: T[] = [];
  private waiters: { pred: (x: T) => boolean; resolve: (x: T) => void }[] = [];

  push = (x: T) => {
    this.items.push(x);
    this.waiters = this.waiters.filter((w) => {
      if (!w.pred(x)) return true;
      w.resolve(x);
      return false;
    });
  };

  waitFor(pred: (x: T) => boolean = () => true, timeoutMs = 15_000, what = "message"): Promise<T> {
    const found = this.items.find(pred);
    if (found !== undefined) return Promise.resolve(found);
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}; got ${JSON.stringify(this.items).slice(0, 2000)}`)), timeoutMs);
      this.waiters.push({ pred, resolve: (x) => (clearTimeout(timer), resolve(x)) });
    });
  }
}

export type Status = { status: string; error?: string };

/** Subscribes and resolves once SUBSCRIBED; rejects with the server's reason on CHANNEL_ERROR. */
export function subscribe(ch: RealtimeChannel, statuses?: Inbox<Status>): Promise<void> {
  return new Promise((resolve, reject) => {
    ch.subscribe((status, err) => {
      statuses?.push({ status, error: err?.message });
      if (status === "SUBSCRIBED") resolve();
      else if (status === "CHANNEL_ERROR" || status === "TIMED_OUT") reject(new Error(err?.message ?? status));
    });
  });
}

/** The reason a join is refused with; the channel is removed so the client stops rejoining. */
export async function joinRefusal(sb: SupabaseClient, ch: RealtimeChannel): Promise<string> {
  const reason = await subscribe(ch).then(
    () => "SUBSCRIBED",
    (err: Error) => err.message,
  );
  await sb.removeChannel(ch);
  return reason;
}

/** A channel's broadcasts (every event) in an inbox. */
export function broadcasts(ch: RealtimeChannel): Inbox<{ event: string; payload: any; meta?: any }> {
  const inbox = new Inbox<{ event: string; payload: any; meta?: any }>();
  ch.on("broadcast", { event: "*" }, (m) => inbox.push(m as never));
  return inbox;
}

export type RawFrame = { text?: any; binary?: Buffer };

/** A bare WebSocket to /realtime/v1/websocket; frames are parsed JSON or raw bytes. */
export async function rawSocket(opts: { vsn?: string; apikey?: string | null } = {}) {
  const url = new URL(`${stack.supabaseUrl.replace(/^http/, "ws")}/realtime/v1/websocket`);
  const key = opts.apikey === undefined ? stack.anonKey : opts.apikey;
  if (key !== null) url.searchParams.set("apikey", key);
  if (opts.vsn) url.searchParams.set("vsn", opts.vsn);
  const ws = new WebSocket(url);
  raws.push(ws);
  const frames = new Inbox<RawFrame>();
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.on("close", (code, reason) => resolve({ code, reason: reason.toString() })),
  );
  ws.on("message", (data: Buffer, isBinary) => frames.push(isBinary ? { binary: data } : { text: JSON.parse(data.toString()) }));
  await new Promise<void>((resolve, reject) => {
    ws.once("open", () => resolve());
    ws.once("error", reject);
  });
  return { ws, frames, closed, send: (frame: unknown) => ws.send(typeof frame === "string" || Buffer.isBuffer(frame) ? frame : JSON.stringify(frame)) };
}

/** The HTTP status and body an upgrade is refused with. */
export function refusedUpgrade(query: string): Promise<{ status: number; body: string }> {
  const url = `${stack.supabaseUrl.replace(/^http/, "ws")}/realtime/v1/websocket${query}`;
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.on("unexpected-response", (_req, res) => {
      let body = "";
      res.on("data", (c: Buffer) => (body += c.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    ws.on("open", () => {
      ws.terminate();
      reject(new Error("the upgrade was accepted"));
    });
    ws.on("error", () => {});
  });
}
