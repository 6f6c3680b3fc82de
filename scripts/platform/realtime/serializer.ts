// Phoenix's two serializers as Supabase Realtime offers them (chosen by the `vsn` query param):
//   1.0.0  JSON objects {topic, event, payload, ref, join_ref}; the server omits join_ref.
//   2.0.0  JSON arrays [join_ref, ref, topic, event, payload], plus two binary frames for user
//          broadcasts: kind 3 (client -> server push) and kind 4 (server -> client).
// realtime-js decodes no other binary kind, so replies are always text.

export type Vsn = "1.0.0" | "2.0.0";

export const JSON_ENCODING = 1;
export const BINARY_ENCODING = 0;
const KIND_USER_BROADCAST_PUSH = 3;
const KIND_USER_BROADCAST = 4;

/** A user broadcast that arrived as a kind-3 frame: its payload is still bytes. */
export interface UserBroadcastPush {
  event: string;
  /** JSON_ENCODING or BINARY_ENCODING. */
  encoding: number;
  body: Buffer;
}

export interface InMessage {
  joinRef: string | null;
  ref: string | null;
  topic: string;
  event: string;
  payload: unknown;
  /** Set for kind-3 frames; `payload` is then undefined. */
  userBroadcast?: UserBroadcastPush;
}

/** A frame Phoenix could not decode: the real server's socket process crashes on these. */
export class FrameError extends Error {}

const refOrNull = (v: unknown): string | null => (v === null || v === undefined ? null : String(v));

function decodeText(vsn: Vsn, text: string): InMessage {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new FrameError("frame is not JSON");
  }
  if (vsn === "2.0.0") {
    // Phoenix matches [join_ref, ref, topic, event, payload | _]: extra elements are ignored.
    if (!Array.isArray(parsed) || parsed.length < 5) throw new FrameError("expected [join_ref, ref, topic, event, payload]");
    const [joinRef, ref, topic, event, payload] = parsed;
    if (typeof topic !== "string" || typeof event !== "string") throw new FrameError("topic and event must be strings");
    return { joinRef: refOrNull(joinRef), ref: refOrNull(ref), topic, event, payload };
  }
  if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) throw new FrameError("expected a message object");
  const m = parsed as Record<string, unknown>;
  if (typeof m.topic !== "string" || typeof m.event !== "string" || !("payload" in m) || !("ref" in m)) {
    throw new FrameError("message needs topic, event, payload and ref");
  }
  return { joinRef: refOrNull(m.join_ref), ref: refOrNull(m.ref), topic: m.topic, event: m.event, payload: m.payload };
}

function decodeUserBroadcastPush(buf: Buffer): InMessage {
  if (buf.length < 7 || buf[0] !== KIND_USER_BROADCAST_PUSH) throw new FrameError("unknown binary frame kind");
  const [joinRefLen, refLen, topicLen, eventLen, metaLen, encoding] = [buf[1], buf[2], buf[3], buf[4], buf[5], buf[6]];
  if (encoding !== JSON_ENCODING && encoding !== BINARY_ENCODING) throw new FrameError("unknown payload encoding");
  let offset = 7;
  const take = (n: number) => {
    if (offset + n > buf.length) throw new FrameError("binary frame shorter than its header says");
    const s = buf.toString("utf8", offset, offset + n);
    offset += n;
    return s;
  };
  const joinRef = take(joinRefLen);
  const ref = take(refLen);
  const topic = take(topicLen);
  const event = take(eventLen);
  take(metaLen); // metadata (e.g. `persist`): Realtime does not use it for delivery
  return {
    joinRef: joinRef || null,
    ref: ref || null,
    topic,
    event: "broadcast",
    payload: undefined,
    userBroadcast: { event, encoding, body: buf.subarray(offset) },
  };
}

export function decode(vsn: Vsn, data: Buffer, isBinary: boolean): InMessage {
  if (!isBinary) return decodeText(vsn, data.toString("utf8"));
  if (vsn !== "2.0.0") throw new FrameError("binary frames need vsn 2.0.0");
  return decodeUserBroadcastPush(data);
}

/** A server message: a channel push, a broadcast (refs null) or phx_close. */
export function encodeMessage(vsn: Vsn, joinRef: string | null, ref: string | null, topic: string, event: string, payload: unknown): string {
  if (vsn === "2.0.0") return JSON.stringify([joinRef, ref, topic, event, payload]);
  return JSON.stringify({ topic, event, payload, ref });
}

export function encodeReply(vsn: Vsn, joinRef: string | null, ref: string | null, topic: string, status: "ok" | "error", response: unknown): string {
  return encodeMessage(vsn, joinRef, ref, topic, "phx_reply", { status, response });
}

/**
 * A kind-4 frame. Each header field is one length byte, so a topic, event or metadata over
 * 255 UTF-8 bytes cannot be framed; the caller then sends the JSON form instead.
 */
export function encodeUserBroadcast(topic: string, event: string, metadata: string, encoding: number, body: Buffer): Buffer | null {
  const t = Buffer.from(topic, "utf8");
  const e = Buffer.from(event, "utf8");
  const m = Buffer.from(metadata, "utf8");
  if (t.length > 255 || e.length > 255 || m.length > 255) return null;
  const header = Buffer.from([KIND_USER_BROADCAST, t.length, e.length, m.length, encoding]);
  return Buffer.concat([header, t, e, m, body]);
}
