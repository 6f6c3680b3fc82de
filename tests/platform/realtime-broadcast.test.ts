// Client Broadcast on public channels through the Realtime stand-in, with supabase-js: `self`
// and `ack`, both serializers talking to each other (2.0.0 sends binary kind-3 frames, 1.0.0
// JSON), and the REST fallbacks (send() before joining, httpSend()).
import { randomUUID } from "node:crypto";
import { createClient } from "@supabase/supabase-js";
import { afterAll, describe, expect, inject, it } from "vitest";
import WebSocket from "ws";
import { admin, createUser } from "../helpers/db.ts";
import { broadcasts, rtClient, subscribe } from "../helpers/realtime.ts";
import { tokenFor } from "../helpers/supabase.ts";

const stack = inject("stack");
/** A client on the 1.0.0 serializer (JSON objects, no binary frames), as realtime-js < 2.91 spoke. */
const legacy = createClient(stack.supabaseUrl, stack.anonKey, {
  auth: { persistSession: false, autoRefreshToken: false },
  realtime: { transport: WebSocket as never, vsn: "1.0.0" },
});
afterAll(() => legacy.removeAllChannels());

const room = () => `room-${randomUUID()}`;

describe("public channel broadcast", () => {
  it("self: false skips the sender, self: true includes it; ack resolves ok after fan-out", async () => {
    const topic = room();
    const [s1, s2, r] = [await rtClient(), await rtClient(), await rtClient()];
    const quiet = s1.channel(topic, { config: { broadcast: { self: false, ack: true } } });
    const loud = s2.channel(topic, { config: { broadcast: { self: true, ack: true } } });
    const listener = r.channel(topic);
    const [quietIn, loudIn, listenIn] = [broadcasts(quiet), broadcasts(loud), broadcasts(listener)];
    await Promise.all([subscribe(quiet), subscribe(loud), subscribe(listener)]);

    expect(await quiet.send({ type: "broadcast", event: "from-quiet", payload: { n: 1 } })).toBe("ok");
    expect(await loud.send({ type: "broadcast", event: "from-loud", payload: { n: 2 } })).toBe("ok");
    await listenIn.waitFor((m) => m.event === "from-loud");
    expect(listenIn.items).toEqual([
      { type: "broadcast", event: "from-quiet", payload: { n: 1 } },
      { type: "broadcast", event: "from-loud", payload: { n: 2 } },
    ]);
    await loudIn.waitFor((m) => m.event === "from-loud");
    expect(loudIn.items.map((m) => m.event)).toEqual(["from-quiet", "from-loud"]);
    // The quiet sender got the loud one (sent after its own), so its own would have come first.
    await quietIn.waitFor((m) => m.event === "from-loud");
    expect(quietIn.items.map((m) => m.event)).toEqual(["from-loud"]);
  });

  it("without ack, send resolves at once and the message still arrives", async () => {
    const topic = room();
    const [a, b] = [await rtClient(), await rtClient()];
    const out = a.channel(topic);
    const inCh = b.channel(topic);
    const inbox = broadcasts(inCh);
    await Promise.all([subscribe(out), subscribe(inCh)]);
    expect(await out.send({ type: "broadcast", event: "fire", payload: { text: "héllo ✓" } })).toBe("ok");
    expect((await inbox.waitFor()).payload).toEqual({ text: "héllo ✓" });
  });

  it("a 2.0.0 client and a 1.0.0 client hear each other", async () => {
    const topic = room();
    const v2 = await rtClient();
    const c2 = v2.channel(topic);
    const c1 = legacy.channel(topic);
    const [in2, in1] = [broadcasts(c2), broadcasts(c1)];
    await Promise.all([subscribe(c2), subscribe(c1)]);
    await c2.send({ type: "broadcast", event: "from-v2", payload: { binary: "kind 3" } });
    expect(await in1.waitFor()).toEqual({ type: "broadcast", event: "from-v2", payload: { binary: "kind 3" } });
    await c1.send({ type: "broadcast", event: "from-v1", payload: { json: true } });
    expect(await in2.waitFor()).toEqual({ type: "broadcast", event: "from-v1", payload: { json: true } });
    // Database broadcasts reach 1.0.0 sockets as JSON, with the same shape.
    await admin.query("select realtime.send($1, 'from-db', $2, false)", [{ db: 1 }, topic]);
    const fromDb = await in1.waitFor((m) => m.event === "from-db");
    expect(fromDb).toEqual({ type: "broadcast", event: "from-db", payload: { db: 1, id: fromDb.meta.id }, meta: { id: expect.any(String) } });
  });

  it("private and public channels of the same name do not hear each other", async () => {
    const user = await createUser();
    const topic = `user:${user.id}`;
    const owner = await rtClient({ token: await tokenFor(user) });
    const priv = owner.channel(topic, { config: { private: true } });
    const anon = await rtClient();
    const pub = anon.channel(topic, { config: { broadcast: { ack: true } } });
    const [privIn, pubIn] = [broadcasts(priv), broadcasts(pub)];
    await Promise.all([subscribe(priv), subscribe(pub)]);
    const pub2 = (await rtClient()).channel(topic);
    const pub2In = broadcasts(pub2);
    await subscribe(pub2);
    expect(await pub.send({ type: "broadcast", event: "public-only", payload: {} })).toBe("ok");
    await pub2In.waitFor((m) => m.event === "public-only");
    // Control on the private room after it: the private channel got that, not the public one.
    await admin.query("select realtime.send($1, 'private-only', $2)", [{}, topic]);
    await privIn.waitFor((m) => m.event === "private-only");
    expect(privIn.items.map((m) => m.event)).toEqual(["private-only"]);
    expect(pubIn.items.map((m) => m.event)).toEqual([]);
  });
});

describe("broadcast over REST", () => {
  it("send() on a channel that is not joined falls back to the REST API and is delivered", async () => {
    const topic = room();
    const listener = (await rtClient()).channel(topic);
    const inbox = broadcasts(listener);
    await subscribe(listener);
    const sender = await rtClient();
    const unjoined = sender.channel(topic);
    const warn = console.warn;
    console.warn = () => {}; // realtime-js warns that the implicit REST fallback is deprecated
    try {
      expect(await unjoined.send({ type: "broadcast", event: "via-rest", payload: { n: 1 } })).toBe("ok");
    } finally {
      console.warn = warn;
    }
    expect(await inbox.waitFor()).toEqual({ type: "broadcast", event: "via-rest", payload: { n: 1 } });
  });

  it("httpSend() delivers JSON and raw bytes; a private topic the caller may write to is refused without a policy", async () => {
    const topic = room();
    const listener = (await rtClient()).channel(topic);
    const inbox = broadcasts(listener);
    await subscribe(listener);
    const sender = (await rtClient()).channel(topic);
    expect(await sender.httpSend("json-event", { a: [1, 2] })).toEqual({ success: true });
    expect(await inbox.waitFor((m) => m.event === "json-event")).toEqual({ type: "broadcast", event: "json-event", payload: { a: [1, 2] } });
    const bytes = new Uint8Array([0, 1, 2, 250]).buffer;
    expect(await sender.httpSend("bytes-event", bytes)).toEqual({ success: true });
    const got = await inbox.waitFor((m) => m.event === "bytes-event");
    expect([...new Uint8Array(got.payload as ArrayBuffer)]).toEqual([0, 1, 2, 250]);

    const user = await createUser();
    const priv = (await rtClient({ token: await tokenFor(user) })).channel(`user:${user.id}`, { config: { private: true } });
    await expect(priv.httpSend("nope", { a: 1 })).rejects.toThrow("Unauthorized");
  });
});
