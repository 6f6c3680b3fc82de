// The Phoenix wire protocol of the Realtime stand-in, spoken with a bare WebSocket: what the
// official client never sends (malformed frames, unknown topics, oversized payloads, protocol
// edge cases) gets the real server's answers, and one bad socket never hurts the others.
import { randomUUID } from "node:crypto";
import { describe, expect, inject, it } from "vitest";
import { admin, createUser } from "../helpers/db.ts";
import { rawSocket, refusedUpgrade, type RawFrame } from "../helpers/realtime.ts";
import { tokenFor } from "../helpers/supabase.ts";

const isReply = (ref: string) => (f: RawFrame) => Array.isArray(f.text) && f.text[1] === ref && f.text[3] === "phx_reply";
const join = (ref: string, topic: string, config: Record<string, unknown> = {}) => [ref, ref, topic, "phx_join", { config }];

/** A kind-3 frame, laid out as realtime-js's serializer writes it. */
function userBroadcastPush(joinRef: string, ref: string, topic: string, event: string, payload: string): Buffer {
  const parts = [joinRef, ref, topic, event, ""].map((s) => Buffer.from(s));
  return Buffer.concat([Buffer.from([3, ...parts.map((p) => p.length), 1]), ...parts, Buffer.from(payload)]);
}

describe("heartbeats and topics", () => {
  it("answers heartbeats on both serializers", async () => {
    const v2 = await rawSocket({ vsn: "2.0.0" });
    v2.send([null, "7", "phoenix", "heartbeat", {}]);
    expect((await v2.frames.waitFor(isReply("7"))).text).toEqual([null, "7", "phoenix", "phx_reply", { status: "ok", response: {} }]);
    const v1 = await rawSocket(); // no vsn: 1.0.0
    v1.send({ topic: "phoenix", event: "heartbeat", payload: {}, ref: "8" });
    expect((await v1.frames.waitFor((f) => f.text?.ref === "8")).text).toEqual({
      topic: "phoenix",
      event: "phx_reply",
      payload: { status: "ok", response: {} },
      ref: "8",
    });
  });

  it("refuses topics outside realtime:*, an empty sub-topic, and pushes to topics never joined", async () => {
    const s = await rawSocket({ vsn: "2.0.0" });
    s.send(join("1", "room-1"));
    expect((await s.frames.waitFor(isReply("1"))).text[4]).toEqual({ status: "error", response: { reason: "unmatched topic" } });
    s.send(join("2", "realtime:"));
    expect((await s.frames.waitFor(isReply("2"))).text[4]).toEqual({
      status: "error",
      response: { reason: "TopicNameRequired: You must provide a topic name" },
    });
    s.send(["9", "3", "realtime:never-joined", "broadcast", { type: "broadcast", event: "x", payload: {} }]);
    expect((await s.frames.waitFor(isReply("3"))).text[4]).toEqual({ status: "error", response: { reason: "unmatched topic" } });
    s.send([null, "4", "realtime:never-joined", "phx_leave", {}]);
    expect((await s.frames.waitFor(isReply("4"))).text[4]).toEqual({ status: "ok", response: {} });
  });

  it("refuses an unknown serializer version at the upgrade", async () => {
    const { anonKey } = inject("stack");
    expect((await refusedUpgrade(`?apikey=${anonKey}&vsn=3.0.0`)).status).toBe(403);
  });
});

describe("joining and leaving", () => {
  it("replies with the postgres_changes bindings (with ids), a system notice that they are not served, and leaves with phx_close", async () => {
    const s = await rawSocket({ vsn: "2.0.0" });
    const topic = `realtime:${randomUUID()}`;
    const binding = { event: "INSERT", schema: "public", table: "things" };
    s.send(join("1", topic, { postgres_changes: [binding] }));
    const reply = (await s.frames.waitFor(isReply("1"))).text;
    expect(reply).toEqual(["1", "1", topic, "phx_reply", { status: "ok", response: { postgres_changes: [{ ...binding, id: expect.any(Number) }] } }]);
    const system = (await s.frames.waitFor((f) => f.text?.[3] === "system")).text;
    expect(system).toEqual(["1", null, topic, "system", { extension: "postgres_changes", status: "error", message: expect.any(String), channel: topic.slice(9) }]);

    // An unknown client event gets no reply: the next heartbeat's reply is the next frame.
    const before = s.frames.items.length;
    s.send(["1", "2", topic, "whatever", {}]);
    s.send([null, "3", "phoenix", "heartbeat", {}]);
    await s.frames.waitFor(isReply("3"));
    expect(s.frames.items.slice(before).map((f) => f.text[1])).toEqual(["3"]);

    s.send(["1", "4", topic, "phx_leave", {}]);
    expect((await s.frames.waitFor(isReply("4"))).text).toEqual(["1", "4", topic, "phx_reply", { status: "ok", response: {} }]);
    expect((await s.frames.waitFor((f) => f.text?.[3] === "phx_close")).text).toEqual(["1", "1", topic, "phx_close", {}]);
  });

  it("a second join on a joined topic closes the first (phx_close with the old join_ref)", async () => {
    const s = await rawSocket({ vsn: "2.0.0" });
    const topic = `realtime:${randomUUID()}`;
    s.send(join("1", topic));
    await s.frames.waitFor(isReply("1"));
    s.send(join("5", topic));
    await s.frames.waitFor(isReply("5"));
    const after = s.frames.items.slice(s.frames.items.findIndex(isReply("1")) + 1).map((f) => f.text);
    expect(after).toEqual([
      ["1", "1", topic, "phx_close", {}],
      ["5", "5", topic, "phx_reply", { status: "ok", response: { postgres_changes: [] } }],
    ]);
  });

  it("refuses replay on a public channel and replay parameters it cannot use", async () => {
    const s = await rawSocket({ vsn: "2.0.0" });
    s.send(join("1", `realtime:${randomUUID()}`, { broadcast: { replay: { since: 0 } } }));
    expect((await s.frames.waitFor(isReply("1"))).text[4]).toEqual({
      status: "error",
      response: { reason: "UnableToReplayMessages: Replay is not allowed for public channels" },
    });
    const user = await createUser();
    const topic = `realtime:user:${user.id}`;
    s.send(["2", "2", topic, "phx_join", { config: { private: true, broadcast: { replay: { since: "yesterday" } } }, access_token: await tokenFor(user) }]);
    expect((await s.frames.waitFor(isReply("2"))).text[4]).toEqual({
      status: "error",
      response: { reason: "UnableToReplayMessages: Replay params are not valid" },
    });
  });

  it("caps channels per socket at 100", async () => {
    const s = await rawSocket({ vsn: "2.0.0" });
    for (let i = 0; i < 100; i++) s.send(join(`j${i}`, `realtime:cap-${i}`));
    await s.frames.waitFor(isReply("j99"));
    s.send(join("over", "realtime:cap-over"));
    expect((await s.frames.waitFor(isReply("over"))).text[4]).toEqual({
      status: "error",
      response: { reason: "ChannelRateLimitReached: Too many channels" },
    });
  });
});

describe("database broadcasts on the wire", () => {
  it("reach 2.0.0 sockets as kind-4 frames with meta {id}", async () => {
    const s = await rawSocket({ vsn: "2.0.0" });
    const sub = randomUUID();
    s.send(join("1", `realtime:${sub}`));
    await s.frames.waitFor(isReply("1"));
    await admin.query("select realtime.send($1, 'db-event', $2, false)", [{ a: 1 }, sub]);
    const frame = (await s.frames.waitFor((f) => !!f.binary)).binary!;
    const [kind, topicLen, eventLen, metaLen, encoding] = frame;
    expect([kind, encoding]).toEqual([4, 1]);
    let o = 5;
    const read = (n: number) => frame.toString("utf8", o, (o += n));
    expect(read(topicLen)).toBe(`realtime:${sub}`);
    expect(read(eventLen)).toBe("db-event");
    const meta = JSON.parse(read(metaLen));
    expect(JSON.parse(frame.toString("utf8", o))).toEqual({ a: 1, id: meta.id });
    expect(meta).toEqual({ id: expect.stringMatching(/^[0-9a-f-]{36}$/) });
  });
});

describe("bad input", () => {
  it("a malformed frame closes that socket only; others carry on and new joins work", async () => {
    const bystander = await rawSocket({ vsn: "2.0.0" });
    const topic = `realtime:${randomUUID()}`;
    bystander.send(join("1", topic));
    await bystander.frames.waitFor(isReply("1"));

    for (const bad of ["not json", JSON.stringify([1, 2, 3]), JSON.stringify({ topic: "x" }), Buffer.from([9, 0, 0]), Buffer.from([3, 200, 0, 0, 0, 0, 1])]) {
      const s = await rawSocket({ vsn: "2.0.0" });
      s.send(bad);
      expect((await s.closed).code, String(bad)).toBe(1011);
    }
    const v1 = await rawSocket({ vsn: "1.0.0" });
    v1.send(["1", "1", topic, "phx_join", {}]); // an array is not a 1.0.0 message
    expect((await v1.closed).code).toBe(1011);

    bystander.send([null, "2", "phoenix", "heartbeat", {}]);
    expect((await bystander.frames.waitFor(isReply("2"))).text[4]).toEqual({ status: "ok", response: {} });
    const fresh = await rawSocket({ vsn: "2.0.0" });
    fresh.send(join("1", topic));
    expect((await fresh.frames.waitFor(isReply("1"))).text[4].status).toBe("ok");
  });

  it("an oversized broadcast is dropped and acked with payload_size_exceeded; the socket stays usable", async () => {
    const topic = `realtime:${randomUUID()}`;
    const listener = await rawSocket({ vsn: "2.0.0" });
    listener.send(join("1", topic));
    await listener.frames.waitFor(isReply("1"));
    const s = await rawSocket({ vsn: "2.0.0" });
    s.send(join("1", topic, { broadcast: { ack: true } }));
    await s.frames.waitFor(isReply("1"));

    const big = JSON.stringify({ blob: "x".repeat(300 * 1024) });
    s.send(userBroadcastPush("1", "2", topic, "big", big));
    expect((await s.frames.waitFor(isReply("2"))).text).toEqual(["1", "2", topic, "phx_reply", { status: "error", response: "payload_size_exceeded" }]);
    s.send(["1", "3", topic, "broadcast", { type: "broadcast", event: "big-json", payload: { blob: "y".repeat(300 * 1024) } }]);
    expect((await s.frames.waitFor(isReply("3"))).text[4]).toEqual({ status: "error", response: "payload_size_exceeded" });

    s.send(userBroadcastPush("1", "4", topic, "small", JSON.stringify({ ok: true })));
    expect((await s.frames.waitFor(isReply("4"))).text[4]).toEqual({ status: "ok", response: {} });
    const got = await listener.frames.waitFor((f) => !!f.binary);
    expect(got.binary!.includes(Buffer.from("small"))).toBe(true);
    expect(listener.frames.items.filter((f) => f.binary)).toHaveLength(1);
    expect(listener.frames.items.some((f) => f.text?.[3] === "broadcast")).toBe(false);
  });
});
