// One WebSocket, as Phoenix's socket runs it: frames are handled strictly in order (a join's
// database check holds later frames back, as the real socket process does), `phoenix`
// heartbeats are answered, joins and leaves are routed, and frames for topics this socket has
// not joined get `unmatched topic`. A frame that cannot be decoded crashes the real socket
// process; here it closes the WebSocket with 1011, and only that socket.
import type WebSocket from "ws";
import type { Frame } from "./broadcast.ts";
import { Channel } from "./channel.ts";
import type { ChannelHost, RealtimeDeps } from "./host.ts";
import { parseJoin } from "./join-config.ts";
import { decode, encodeReply, FrameError, type InMessage, type Vsn } from "./serializer.ts";

/** Phoenix's stable id for a Postgres Changes binding (the server uses :erlang.phash2). */
function bindingId(binding: unknown): number {
  let h = 0;
  for (const ch of JSON.stringify(binding)) h = (Math.imul(h, 31) + ch.charCodeAt(0)) >>> 0;
  return h % 2 ** 27;
}

export class Connection implements ChannelHost {
  private readonly channels = new Map<string, Channel>();
  private queue: Promise<void> = Promise.resolve();
  private closed = false;
  /** For the idle sweep: Phoenix drops sockets silent for 60 s. */
  lastSeen = Date.now();

  constructor(
    private readonly ws: WebSocket,
    readonly vsn: Vsn,
    readonly apiKey: string,
    readonly xHeaders: Record<string, string>,
    readonly deps: RealtimeDeps,
    private readonly onClosed: (c: Connection) => void,
  ) {
    ws.on("message", (data: Buffer, isBinary: boolean) => {
      this.lastSeen = Date.now();
      this.enqueue(() => this.onFrame(data, isBinary));
    });
    ws.on("close", () => this.teardown());
    ws.on("error", (err) => deps.log(`socket error: ${err.message}`));
  }

  enqueue(fn: () => Promise<void> | void): void {
    this.queue = this.queue.then(async () => {
      if (this.closed) return;
      try {
        await fn();
      } catch (err) {
        this.deps.log(`realtime socket: ${(err as Error).stack ?? err}`);
      }
    });
  }

  sendFrame(frame: Frame): void {
    if (this.ws.readyState === this.ws.OPEN) this.ws.send(frame);
  }

  forget(channel: Channel): void {
    if (this.channels.get(channel.joinTopic) === channel) this.channels.delete(channel.joinTopic);
  }

  /** Server-side close (shutdown, idle): the client sees a close frame and reconnects if it wants. */
  close(code: number, reason: string): void {
    this.ws.close(code, reason);
    this.teardown();
  }

  private teardown(): void {
    if (this.closed) return;
    this.closed = true;
    for (const ch of [...this.channels.values()]) ch.dispose();
    this.channels.clear();
    this.onClosed(this);
  }

  private reply(msg: InMessage, status: "ok" | "error", response: unknown): void {
    this.sendFrame(encodeReply(this.vsn, msg.joinRef, msg.ref, msg.topic, status, response));
  }

  private async onFrame(data: Buffer, isBinary: boolean): Promise<void> {
    let msg: InMessage;
    try {
      msg = decode(this.vsn, data, isBinary);
    } catch (err) {
      if (!(err instanceof FrameError)) throw err;
      this.deps.log(`malformed frame, closing the socket: ${err.message}`);
      return this.close(1011, `malformed frame: ${err.message}`.slice(0, 120));
    }

    if (msg.topic === "phoenix" && msg.event === "heartbeat") return this.reply(msg, "ok", {});
    if (msg.event === "phx_join") return this.join(msg);

    const channel = this.channels.get(msg.topic);
    const current = channel && (msg.joinRef === null || msg.joinRef === channel.joinRef);
    if (msg.event === "phx_leave") {
      if (channel && current) return channel.leave(msg.ref);
      return this.reply(msg, "ok", {});
    }
    if (!channel || !current) return this.reply(msg, "error", { reason: "unmatched topic" });
    await channel.handle(msg);
  }

  private async join(msg: InMessage): Promise<void> {
    if (!msg.topic.startsWith("realtime:")) return this.reply(msg, "error", { reason: "unmatched topic" });
    // A second join on a joined topic replaces the channel: the old one is closed first.
    this.channels.get(msg.topic)?.close();
    if (this.channels.size >= this.deps.maxChannelsPerSocket) {
      return this.reply(msg, "error", { reason: "ChannelRateLimitReached: Too many channels" });
    }
    const config = parseJoin(msg.payload);
    const result = await Channel.join(this, msg, config);
    if (this.closed) return;
    if (typeof result === "string") return this.reply(msg, "error", { reason: result });
    this.channels.set(msg.topic, result);
    result.attach();
    const postgresChanges = config.postgresChanges.map((b) => ({ ...b, id: bindingId(b) }));
    this.reply(msg, "ok", { postgres_changes: postgresChanges });
    result.afterJoin();
  }
}
