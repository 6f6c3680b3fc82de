// What a channel needs from the server and from the socket it lives on; kept apart so that
// channel.ts and socket.ts do not import each other.
import type pg from "pg";
import type { TokenVerifier } from "../auth.ts";
import type { Frame } from "./broadcast.ts";
import type { Channel } from "./channel.ts";
import type { Rooms } from "./rooms.ts";
import type { Vsn } from "./serializer.ts";

export interface RealtimeDeps {
  /** Superuser pool: authorization checks switch to the caller's role themselves. */
  pool: pg.Pool;
  verifier: TokenVerifier;
  rooms: Rooms;
  log: (line: string) => void;
  /** Broadcast and presence payload limit (hosted Free: 256 KB). */
  maxPayloadBytes: number;
  /** Channels one socket may join (Realtime's default: 100). */
  maxChannelsPerSocket: number;
}

export interface ChannelHost {
  readonly vsn: Vsn;
  readonly deps: RealtimeDeps;
  /** The API key the socket connected with: the token of joins that bring none. */
  readonly apiKey: string;
  /** The upgrade's x-* headers, which Realtime hands to policies as request.headers. */
  readonly xHeaders: Record<string, string>;
  sendFrame(frame: Frame): void;
  /** Runs fn after the socket's pending work, in order (timers use it, as frames do). */
  enqueue(fn: () => Promise<void> | void): void;
  /** The channel is gone (left, replaced, shut down, or the socket closed). */
  forget(channel: Channel): void;
}
