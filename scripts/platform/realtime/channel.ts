// One joined channel (a `realtime:<sub-topic>` on one socket), as RealtimeChannel runs it:
// the token it joined with and when that expires, the private channel's cached policies (read
// at join, write lazily on the first send or track, all cleared by a new token), Broadcast from
// the client, and Presence. Shutdowns tell the client why (`system`) and then `phx_close`,
// which realtime-js treats as final (no rejoin loop).
import { canRead, canWrite, readPolicies, type AuthContext } from "./authorization.ts";
import { Broadcast, type Frame } from "./broadcast.ts";
import type { ChannelHost } from "./host.ts";
import type { JoinConfig } from "./join-config.ts";
import { replayMessages, type ReplayedMessage } from "./replay.ts";
import type { Room, Subscriber } from "./rooms.ts";
import { encodeMessage, encodeReply, type InMessage, type Vsn } from "./serializer.ts";
import { checkToken, isOpaqueKey } from "./tokens.ts";

/** Realtime re-confirms a token at min(this, time left); also keeps timers within setTimeout's range. */
const CONFIRM_TOKEN_MAX_MS = 60 * 60 * 1000;

interface Policies {
  broadcastRead: boolean;
  presenceRead: boolean | null;
  broadcastWrite: boolean | null;
  presenceWrite: boolean | null;
}

const isPlainObject = (v: unknown): v is Record<string, unknown> => !!v && typeof v === "object" && !Array.isArray(v);

export class Channel implements Subscriber {
  private room: Room | undefined;
  private confirmTimer: NodeJS.Timeout | undefined;
  /** JSON of the state this channel tracks, so an identical re-track is a no-op. */
  private tracked: string | null = null;
  private gone = false;
  /** Ids of replayed messages: their live copies are not delivered again. */
  private readonly replayedIds: Set<string> | undefined;

  private constructor(
    private readonly host: ChannelHost,
    readonly joinTopic: string,
    readonly joinRef: string | null,
    private readonly config: JoinConfig,
    private token: string,
    private exp: number,
    private auth: AuthContext,
    private policies: Policies | null,
    private replayed: ReplayedMessage[],
  ) {
    if (replayed.length) this.replayedIds = new Set(replayed.map((m) => m.id));
  }

  get subTopic() {
    return this.joinTopic.slice("realtime:".length);
  }

  get vsn(): Vsn {
    return this.host.vsn;
  }

  /** Everything a join checks; on refusal, the reason the reply carries. Does not enter the room yet. */
  static async join(host: ChannelHost, msg: InMessage, config: JoinConfig): Promise<Channel | string> {
    const subTopic = msg.topic.slice("realtime:".length);
    if (!subTopic) return "TopicNameRequired: You must provide a topic name";
    const token = typeof config.accessToken === "string" && !isOpaqueKey(config.accessToken) ? config.accessToken : host.apiKey;
    const check = await checkToken(host.deps.verifier, token);
    if (!check.ok) return `${check.code}: ${check.message}`;
    const auth: AuthContext = { claims: check.token.claims as Record<string, unknown>, headers: host.xHeaders };
    let policies: Policies | null = null;
    if (config.private) {
      const read = await readPolicies(host.deps.pool, auth, subTopic, config.presenceEnabled, host.deps.log);
      if (!read.broadcast && !read.presence) {
        return `Unauthorized: You do not have permissions to read from this Channel topic: ${subTopic}`;
      }
      policies = { broadcastRead: read.broadcast, presenceRead: read.presence, broadcastWrite: null, presenceWrite: null };
    }
    let replayed: ReplayedMessage[] = [];
    if (config.replay !== undefined) {
      if (policies && !policies.broadcastRead) return `Unauthorized: You do not have permissions to read from this Channel topic: ${subTopic}`;
      if (!policies) return "UnableToReplayMessages: Replay is not allowed for public channels";
      if (config.replay === "invalid") return "UnableToReplayMessages: Replay params are not valid";
      replayed = await replayMessages(host.deps.pool, subTopic, config.replay.since, config.replay.limit);
    }
    return new Channel(host, msg.topic, msg.joinRef, config, token, check.exp, auth, policies, replayed);
  }

  /** Enters the room and starts watching the token; called in the same tick as the ok reply. */
  attach(): void {
    this.room = this.host.deps.rooms.enter(this.config.private, this.subTopic, this);
    this.scheduleConfirm();
  }

  /** What follows the ok reply: replayed messages, the Postgres Changes notice, presence_state. */
  afterJoin(): void {
    for (const m of this.replayed) {
      this.push("broadcast", { type: "broadcast", event: m.event, payload: m.payload, meta: { replayed: true, id: m.id } });
    }
    this.replayed = [];
    if (this.config.postgresChanges.length > 0) {
      this.push("system", {
        extension: "postgres_changes",
        status: "error",
        message: "Postgres Changes are not served by the local Realtime stand-in; use Broadcast from the database",
        channel: this.subTopic,
      });
    }
    if (this.config.presenceEnabled) this.syncPresence();
  }

  receivesBroadcast(message: Broadcast): boolean {
    if (this.replayedIds && message.id !== undefined && this.replayedIds.has(message.id)) return false;
    return !this.policies || this.policies.broadcastRead;
  }

  receivesPresence(): boolean {
    return !this.policies || this.policies.presenceRead === true;
  }

  sendFrame(frame: Frame): void {
    this.host.sendFrame(frame);
  }

  async handle(msg: InMessage): Promise<void> {
    if (msg.event === "broadcast") return this.onBroadcast(msg);
    if (msg.event === "presence") return this.onPresence(msg);
    if (msg.event === "access_token") return this.onAccessToken(msg.payload);
    // Unknown client events are ignored without a reply, as Realtime does.
  }

  /** phx_leave: ok, then phx_close. */
  leave(ref: string | null): void {
    this.host.sendFrame(encodeReply(this.vsn, this.joinRef, ref, this.joinTopic, "ok", {}));
    this.close();
  }

  /** Ends the channel with a reason the client sees as a `system` error, then phx_close. */
  shutdown(message: string): void {
    if (this.gone) return;
    this.push("system", { extension: "system", status: "error", message, channel: this.subTopic });
    this.close();
  }

  /** phx_close with this join's ref, then gone (also when a second join replaces this one). */
  close(): void {
    if (this.gone) return;
    this.host.sendFrame(encodeMessage(this.vsn, this.joinRef, this.joinRef, this.joinTopic, "phx_close", {}));
    this.dispose();
  }

  /** Gone without a word: the socket itself went away. */
  dispose(): void {
    if (this.gone) return;
    this.gone = true;
    clearTimeout(this.confirmTimer);
    if (this.room) {
      const diff = this.room.presence.untrack(this, this.config.presenceKey);
      this.host.deps.rooms.leave(this.room, this);
      if (diff) this.room.presenceDiff(diff);
    }
    this.host.forget(this);
  }

  private push(event: string, payload: unknown): void {
    this.host.sendFrame(encodeMessage(this.vsn, this.joinRef, null, this.joinTopic, event, payload));
  }

  private reply(ref: string | null, status: "ok" | "error", response: unknown): void {
    this.host.sendFrame(encodeReply(this.vsn, this.joinRef, ref, this.joinTopic, status, response));
  }

  private syncPresence(): void {
    if (this.room && this.receivesPresence()) this.push("presence_state", this.room.presence.list());
  }

  private async onBroadcast(msg: InMessage): Promise<void> {
    const { deps } = this.host;
    if (this.policies) {
      if (this.policies.broadcastWrite === null) {
        this.policies.broadcastWrite = await canWrite(deps.pool, this.auth, this.subTopic, "broadcast", deps.log);
      }
      // Denied private writes are dropped without a reply, even with ack.
      if (!this.policies.broadcastWrite || this.gone) return;
    }
    const ub = msg.userBroadcast;
    const message = new Broadcast(
      this.joinTopic,
      ub ? { kind: "user", event: ub.event, encoding: ub.encoding, body: ub.body } : { kind: "text", payload: msg.payload },
    );
    if (message.size > deps.maxPayloadBytes) {
      if (this.config.ack) this.reply(msg.ref, "error", "payload_size_exceeded");
      return;
    }
    this.room?.broadcast(message, this.config.self ? undefined : this);
    if (this.config.ack) this.reply(msg.ref, "ok", {});
  }

  private async onPresence(msg: InMessage): Promise<void> {
    const payload = isPlainObject(msg.payload) ? msg.payload : {};
    if (typeof payload.event !== "string") return this.reply(msg.ref, "ok", {});
    const event = payload.event.toLowerCase();
    if (event === "untrack") {
      const diff = this.room?.presence.untrack(this, this.config.presenceKey);
      this.tracked = null;
      this.reply(msg.ref, "ok", {});
      if (diff) this.room?.presenceDiff(diff);
      return;
    }
    if (event !== "track") return this.reply(msg.ref, "error", {});

    const { deps } = this.host;
    if (this.policies && this.policies.presenceWrite === null) {
      // A track can be what enables presence: presence read was not asked at join then.
      if (this.policies.presenceRead === null) {
        this.policies.presenceRead = await canRead(deps.pool, this.auth, this.subTopic, "presence", deps.log);
      }
      this.policies.presenceWrite = await canWrite(deps.pool, this.auth, this.subTopic, "presence", deps.log);
    }
    if (this.gone) return;
    if (this.policies && !this.policies.presenceWrite) return this.reply(msg.ref, "error", {});
    const state = payload.payload ?? {};
    if (!isPlainObject(state)) return this.reply(msg.ref, "error", { reason: "Presence track payload must be a map" });
    const json = JSON.stringify(state);
    if (Buffer.byteLength(json) > deps.maxPayloadBytes) return this.shutdown("Track message size exceeded");
    if (json === this.tracked || !this.room) return this.reply(msg.ref, "ok", {});

    this.tracked = json;
    const diff = this.room.presence.track(this, this.config.presenceKey, state);
    this.reply(msg.ref, "ok", {});
    this.room.presenceDiff(diff);
    if (!this.config.presenceEnabled) {
      // This track enabled presence: the channel never got a presence_state, so send it now.
      this.config.presenceEnabled = true;
      this.syncPresence();
    }
  }

  private async onAccessToken(payload: unknown): Promise<void> {
    const token = isPlainObject(payload) ? payload.access_token : undefined;
    if (typeof token !== "string" || isOpaqueKey(token) || token === this.token) return;
    this.token = token;
    const { deps } = this.host;
    const check = await checkToken(deps.verifier, token);
    if (this.gone) return;
    if (!check.ok) return this.shutdown(check.message);
    this.exp = check.exp;
    this.auth = { claims: check.token.claims as Record<string, unknown>, headers: this.auth.headers };
    if (this.policies) {
      const previous = this.policies;
      const withPresence = this.config.presenceEnabled || previous.presenceRead !== null;
      const read = await readPolicies(deps.pool, this.auth, this.subTopic, withPresence, deps.log);
      if (this.gone) return;
      const revoked = (previous.broadcastRead && !read.broadcast) || (previous.presenceRead === true && read.presence !== true);
      if (revoked) return this.shutdown(`You no longer have permission to read from this Channel topic: ${this.subTopic}`);
      this.policies = { broadcastRead: read.broadcast, presenceRead: read.presence, broadcastWrite: null, presenceWrite: null };
    }
    this.scheduleConfirm();
  }

  /** Realtime's confirm_token: re-verify when the token expires (or hourly), and shut down if it has. */
  private scheduleConfirm(): void {
    clearTimeout(this.confirmTimer);
    // A few ms past `exp`, so the verifier sees it expired ("... 0 seconds ago").
    const delay = Math.max(0, Math.min(CONFIRM_TOKEN_MAX_MS, this.exp * 1000 - Date.now() + 5));
    this.confirmTimer = setTimeout(() => this.host.enqueue(() => this.confirmToken()), delay);
    this.confirmTimer.unref();
  }

  private async confirmToken(): Promise<void> {
    if (this.gone) return;
    const check = await checkToken(this.host.deps.verifier, this.token);
    if (this.gone) return;
    if (!check.ok) return this.shutdown(check.message);
    this.exp = check.exp;
    this.scheduleConfirm();
  }
}
