// Broadcast from the database through the Realtime stand-in, received with supabase-js as an
// app would: the outbox's org events on org:<id>, notifications on user:<id>, realtime.send and
// realtime.broadcast_changes, each only where RLS on realtime.messages lets the reader in.
import { describe, expect, it } from "vitest";
import { admin, createTeam, createUser, rpc } from "../helpers/db.ts";
import { broadcasts, joinRefusal, rtClient, subscribe } from "../helpers/realtime.ts";
import { tokenFor } from "../helpers/supabase.ts";

const asUser = async (...args: Parameters<typeof tokenFor>) => rtClient({ token: await tokenFor(...args) });
const refusal = (topic: string) => `Unauthorized: You do not have permissions to read from this Channel topic: ${topic}`;

describe("org events on org:<id>", () => {
  it("a tenancy change reaches members' private org channel with the event envelope and meta.id", async () => {
    const team = await createTeam("Rt org");
    const viewer = await asUser(team.viewer);
    const ch = viewer.channel(`org:${team.orgId}`, { config: { private: true } });
    const inbox = broadcasts(ch);
    await subscribe(ch);

    await rpc(team.owner, "set_member_role", { p_org_id: team.orgId, p_user_id: team.viewer.id, p_role: "member" });
    const msg = await inbox.waitFor((m) => m.event === "member.role_changed", 30_000);
    expect(msg).toMatchObject({
      type: "broadcast",
      event: "member.role_changed",
      payload: {
        type: "member.role_changed",
        org_id: team.orgId,
        actor: { kind: "user", id: team.owner.id },
        data: { user_id: team.viewer.id, old_role: "viewer", new_role: "member" },
      },
    });
    // meta.id is the realtime.messages row; the envelope keeps its own id (the outbox event's).
    const { rows } = await admin.query("select event, private, payload ->> 'id' as id from realtime.messages where id = $1", [msg.meta.id]);
    expect(rows).toEqual([{ event: "member.role_changed", private: true, id: msg.payload.id }]);
    expect(msg.payload.id).not.toBe(msg.meta.id);
  });

  it("members of another org are refused on the channel, and their own org's channel stays quiet", async () => {
    const [a, b] = [await createTeam("Rt A"), await createTeam("Rt B")];
    const stranger = await asUser(b.member);
    expect(await joinRefusal(stranger, stranger.channel(`org:${a.orgId}`, { config: { private: true } }))).toBe(refusal(`org:${a.orgId}`));

    const own = stranger.channel(`org:${b.orgId}`, { config: { private: true } });
    const strangerInbox = broadcasts(own);
    await subscribe(own);
    const member = await asUser(a.member);
    const control = member.channel(`org:${a.orgId}`, { config: { private: true } });
    const memberInbox = broadcasts(control);
    await subscribe(control);

    await admin.query("select realtime.send($1, 'probe.first', $2)", [{ n: 1 }, `org:${a.orgId}`]);
    await admin.query("select realtime.send($1, 'probe.last', $2)", [{ n: 2 }, `org:${b.orgId}`]);
    await memberInbox.waitFor((m) => m.event === "probe.first");
    await strangerInbox.waitFor((m) => m.event === "probe.last");
    // B's channel got B's later message, so A's earlier one would have arrived before it.
    // (Other events of the new orgs may arrive from the outbox meanwhile.)
    expect(strangerInbox.items.map((m) => m.event)).not.toContain("probe.first");
    expect(memberInbox.items.map((m) => m.event)).not.toContain("probe.last");
  });

  it("an org that requires MFA refuses an aal1 member and serves the same member at aal2", async () => {
    const team = await createTeam("Rt MFA");
    await rpc(team.owner, "update_org", { p_org_id: team.orgId, p_require_mfa: true }, { aal: "aal2" });
    const aal1 = await asUser(team.member);
    expect(await joinRefusal(aal1, aal1.channel(`org:${team.orgId}`, { config: { private: true } }))).toBe(refusal(`org:${team.orgId}`));

    const aal2 = await asUser(team.member, { aal: "aal2" });
    const ch = aal2.channel(`org:${team.orgId}`, { config: { private: true } });
    const inbox = broadcasts(ch);
    await subscribe(ch);
    await admin.query("select realtime.send($1, 'mfa.check', $2)", [{ ok: true }, `org:${team.orgId}`]);
    expect((await inbox.waitFor((m) => m.event === "mfa.check")).payload).toMatchObject({ ok: true });
  });

  it("a public channel of the same name is a different room: private messages never reach it", async () => {
    const team = await createTeam("Rt rooms");
    const anon = await rtClient();
    const pub = anon.channel(`org:${team.orgId}`);
    const pubInbox = broadcasts(pub);
    await subscribe(pub);
    const member = await asUser(team.member);
    const priv = member.channel(`org:${team.orgId}`, { config: { private: true } });
    const privInbox = broadcasts(priv);
    await subscribe(priv);

    await admin.query("select realtime.send($1, 'room.private', $2)", [{ secret: true }, `org:${team.orgId}`]);
    await admin.query("select realtime.send($1, 'room.public', $2, false)", [{ secret: false }, `org:${team.orgId}`]);
    await admin.query("select realtime.send($1, 'room.private.after', $2)", [{ secret: true }, `org:${team.orgId}`]);
    await privInbox.waitFor((m) => m.event === "room.private.after");
    await pubInbox.waitFor((m) => m.event === "room.public");
    expect(pubInbox.items.map((m) => m.event)).toEqual(["room.public"]);
    expect(privInbox.items.map((m) => m.event)).not.toContain("room.public");
  });

  it("realtime.broadcast_changes arrives in the shape realtime-js types for it", async () => {
    const team = await createTeam("Rt changes");
    const member = await asUser(team.member);
    const ch = member.channel(`org:${team.orgId}`, { config: { private: true } });
    const inbox = broadcasts(ch);
    await subscribe(ch);
    await admin.query(
      `select realtime.broadcast_changes('org:' || o.id, 'UPDATE', 'UPDATE', 'orgs', 'public', o, o) from public.orgs o where o.id = $1`,
      [team.orgId],
    );
    const msg = await inbox.waitFor((m) => m.event === "UPDATE");
    expect(msg.payload).toMatchObject({
      operation: "UPDATE",
      table: "orgs",
      schema: "public",
      record: { id: team.orgId },
      old_record: { id: team.orgId },
    });
    expect(msg.payload.id).toBe(msg.meta.id);
  });
});

describe("replay", () => {
  it("a private join with replay gets the latest messages since `since`, marked replayed, then live ones", async () => {
    const team = await createTeam("Rt replay");
    const topic = `org:${team.orgId}`;
    const since = Date.now() - 1000;
    const watcher = await asUser(team.admin);
    const watch = watcher.channel(topic, { config: { private: true } });
    const watched = broadcasts(watch);
    await subscribe(watch);
    for (const n of [1, 2, 3]) await admin.query("select realtime.send($1, 'history', $2)", [{ n }, topic]);
    await watched.waitFor((m) => m.payload?.n === 3); // all three went live before the replaying join
    const sb = await asUser(team.member);
    const ch = sb.channel(topic, { config: { private: true, broadcast: { replay: { since, limit: 2 } } } });
    const inbox = broadcasts(ch);
    await subscribe(ch);
    await inbox.waitFor((m) => m.payload?.n === 3);
    const history = inbox.items.filter((m) => m.event === "history");
    expect(history.map((m) => m.payload.n)).toEqual([2, 3]);
    expect(history.every((m) => m.meta.replayed === true && m.meta.id === m.payload.id)).toBe(true);

    await admin.query("select realtime.send($1, 'history', $2)", [{ n: 4 }, topic]);
    const live = await inbox.waitFor((m) => m.payload?.n === 4);
    expect(live.meta).toEqual({ id: live.payload.id });
    expect(inbox.items.filter((m) => m.event === "history").map((m) => m.payload.n)).toEqual([2, 3, 4]);
  });
});

describe("authorization probes", () => {
  it("the probe rows of join, send and track checks are never delivered nor kept", async () => {
    const team = await createTeam("Rt probes");
    const watcher = await asUser(team.member);
    const watch = watcher.channel(`org:${team.orgId}`, { config: { private: true } });
    const inbox = broadcasts(watch);
    await subscribe(watch);

    const other = await asUser(team.admin);
    const ch = other.channel(`org:${team.orgId}`, { config: { private: true, presence: { key: team.admin.id } } });
    ch.on("presence", { event: "sync" }, () => {});
    await subscribe(ch); // read probes for broadcast and presence
    await ch.send({ type: "broadcast", event: "denied", payload: {} }); // broadcast write probe (denied)
    // The socket handles frames in order, so this reply also means the send's check is done.
    expect(await ch.track({ here: true })).toBe("ok"); // presence write probe
    await admin.query("select realtime.send($1, 'control', $2)", [{}, `org:${team.orgId}`]);
    await inbox.waitFor((m) => m.event === "control");
    expect(inbox.items.map((m) => m.event)).not.toContain("authorization_probe");
    const { rows } = await admin.query("select count(*)::int as n from realtime.messages where topic = $1 and event = 'authorization_probe'", [
      `org:${team.orgId}`,
    ]);
    expect(rows[0].n).toBe(0);
  });
});

describe("notifications on user:<id>", () => {
  it("the subject's notification reaches their own channel and no one else may join it", async () => {
    const team = await createTeam("Rt notify");
    const me = await asUser(team.member);
    const ch = me.channel(`user:${team.member.id}`, { config: { private: true } });
    const inbox = broadcasts(ch);
    await subscribe(ch);
    const other = await asUser(team.owner);
    expect(await joinRefusal(other, other.channel(`user:${team.member.id}`, { config: { private: true } }))).toBe(
      refusal(`user:${team.member.id}`),
    );

    await rpc(team.owner, "set_member_role", { p_org_id: team.orgId, p_user_id: team.member.id, p_role: "viewer" });
    const msg = await inbox.waitFor((m) => m.event === "notification", 30_000);
    const { rows } = await admin.query("select id, title from notify.notifications where user_id = $1 and type = 'member.role_changed'", [
      team.member.id,
    ]);
    expect(rows).toHaveLength(1);
    // The notification's own id stays in the payload; the message id travels as meta.id.
    expect(msg.payload).toMatchObject({ id: rows[0].id, org_id: team.orgId, type: "member.role_changed", title: rows[0].title });
    expect(msg.meta.id).not.toBe(rows[0].id);
  });

  it("an anonymous client cannot join a user channel", async () => {
    const user = await createUser();
    const anon = await rtClient();
    expect(await joinRefusal(anon, anon.channel(`user:${user.id}`, { config: { private: true } }))).toBe(refusal(`user:${user.id}`));
  });
});
