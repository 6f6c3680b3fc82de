// One broadcast on its way to a room's subscribers, encoded at most once per serializer so that
// fanning out to N sockets costs N writes, not N encodings (the real server caches the same way).
//   text   what a client pushed as a JSON broadcast (or the REST API sent): forwarded unchanged
//          as event `broadcast` with null refs, to every serializer.
//   user   a user broadcast with the payload as bytes (a kind-3 push, or a row from the
//          database): a kind-4 frame for 2.0.0 sockets; for 1.0.0 sockets the JSON object
//          {type, event, payload, meta?}, or nothing when the payload is raw bytes.
import { encodeMessage, encodeUserBroadcast, JSON_ENCODING, type Vsn } from "./serializer.ts";

export type BroadcastBody =
  | { kind: "text"; payload: unknown }
  | { kind: "user"; event: string; encoding: number; body: Buffer; meta?: Record<string, unknown>; value?: unknown };

export type Frame = string | Buffer;

export class Broadcast {
  private readonly cache = new Map<Vsn, Frame | null>();
  /** meta.id, when the message has one (database rows, REST messages with an id). */
  readonly id: string | undefined;

  constructor(
    /** The topic clients joined: `realtime:<sub-topic>`. */
    readonly joinTopic: string,
    readonly body: BroadcastBody,
  ) {
    const meta = body.kind === "user" ? body.meta : (body.payload as { meta?: Record<string, unknown> } | null)?.meta;
    this.id = typeof meta?.id === "string" ? meta.id : undefined;
  }

  /** Size the limits apply to: the user payload as sent. */
  get size(): number {
    return this.body.kind === "user" ? this.body.body.length : Buffer.byteLength(JSON.stringify(this.body.payload ?? null));
  }

  frame(vsn: Vsn): Frame | null {
    let f = this.cache.get(vsn);
    if (f === undefined) {
      f = this.encode(vsn);
      this.cache.set(vsn, f);
    }
    return f;
  }

  private encode(vsn: Vsn): Frame | null {
    const b = this.body;
    if (b.kind === "text") return encodeMessage(vsn, null, null, this.joinTopic, "broadcast", b.payload);
    if (vsn === "2.0.0") {
      const meta = b.meta ? JSON.stringify(b.meta) : "";
      const frame = encodeUserBroadcast(this.joinTopic, b.event, meta, b.encoding, b.body);
      if (frame) return frame;
    }
    if (b.encoding !== JSON_ENCODING) return null; // raw bytes cannot travel as JSON
    const value = b.value !== undefined ? b.value : JSON.parse(b.body.toString("utf8"));
    const payload: Record<string, unknown> = { type: "broadcast", event: b.event, payload: value };
    if (b.meta) payload.meta = b.meta;
    return encodeMessage(vsn, null, null, this.joinTopic, "broadcast", payload);
  }
}
