// Presence on the private org:<id> channel through the Realtime stand-in, with supabase-js:
// members see each other join, update and leave (presence_state, presence_diff); only
// members may join; and a track needs the INSERT policy for presence on that topic.
import { describe, expect, it } from "vitest";
import { createTeam, createUser } from "../helpers/db.ts";
import { Inbox, joinRefusal, rtClient, subscribe } from "../helpers/realtime.ts";
import { tokenFor } from "../helpers/supabase.ts";

type PresenceEvent = { event: string; key: string; newPresences?: any[]; leftPresences?: any[] };

async function member(user: Parameters<typeof tokenFor>[0], orgId: string) {
  const sb = await rtClient({ token: await tokenFor(user) });
  const ch = sb.channel(`org:${orgId}`, { config: { private: true, presence: { key: user.id } } });
  const events = new Inbox<PresenceEvent>();
  ch.on("presence", { event: "join" }, (p) => events.push(p as PresenceEvent));
  ch.on("presence", { event: "leave" }, (p) => events.push(p as PresenceEvent));
  const synced = new Inbox<true>();
  ch.on("presence", { event: "sync" }, () => synced.push(true));
  return { sb, ch, events, synced };
}

describe("presence on org:<id>", () => {
  it("two members see each other join, update and leave", async () => {
    const team = await createTeam("Rt presence");
    const a = await member(team.member, team.orgId);
    await subscribe(a.ch);
    expect(await a.ch.track({ name: "Ann", status: "online" })).toBe("ok");
    await a.events.waitFor((e) => e.event === "join" && e.key === team.member.id);

    const b = await member(team.viewer, team.orgId);
    await subscribe(b.ch);
    // B's presence_state already lists A, before B tracks anything.
    await b.synced.waitFor();
    expect(b.ch.presenceState()[team.member.id]).toEqual([
      { name: "Ann", status: "online", presence_ref: expect.any(String) },
    ]);
    expect(await b.ch.track({ name: "Bea", status: "online" })).toBe("ok");
    const joined = await a.events.waitFor((e) => e.event === "join" && e.key === team.viewer.id);
    expect(joined.newPresences).toEqual([{ name: "Bea", status: "online", presence_ref: expect.any(String) }]);
    expect(Object.keys(a.ch.presenceState()).sort()).toEqual([team.member.id, team.viewer.id].sort());

    // A new state replaces the old meta (one entry per channel, not two).
    expect(await b.ch.track({ name: "Bea", status: "away" })).toBe("ok");
    await a.events.waitFor((e) => e.event === "join" && e.key === team.viewer.id && e.newPresences?.[0]?.status === "away");
    // ...which realtime-js reports as a leave of the old meta plus a join of the new one.
    expect(a.events.items.filter((e) => e.event === "leave").map((e) => e.leftPresences?.[0]?.status)).toEqual(["online"]);
    expect(a.ch.presenceState()[team.viewer.id]).toEqual([{ name: "Bea", status: "away", presence_ref: expect.any(String) }]);

    // Untrack is a leave; so is leaving the channel.
    expect(await b.ch.untrack()).toBe("ok");
    await a.events.waitFor((e) => e.event === "leave" && e.key === team.viewer.id && e.leftPresences?.[0]?.status === "away");
    expect(a.ch.presenceState()[team.viewer.id]).toBeUndefined();
    expect(await b.ch.track({ name: "Bea", status: "back" })).toBe("ok");
    await a.events.waitFor((e) => e.event === "join" && e.newPresences?.[0]?.status === "back");
    await b.sb.removeChannel(b.ch);
    const left = await a.events.waitFor((e) => e.event === "leave" && e.leftPresences?.[0]?.status === "back");
    expect(left.key).toBe(team.viewer.id);
    expect(Object.keys(a.ch.presenceState())).toEqual([team.member.id]);

    // Closing the socket untracks too: B sees A go.
    const c = await member(team.admin, team.orgId);
    await subscribe(c.ch);
    await c.synced.waitFor();
    expect(Object.keys(c.ch.presenceState())).toEqual([team.member.id]);
    await a.sb.realtime.disconnect();
    await c.events.waitFor((e) => e.event === "leave" && e.key === team.member.id);
    expect(c.ch.presenceState()).toEqual({});
  });

  it("a non-member cannot join the org's presence", async () => {
    const team = await createTeam("Rt presence deny");
    const stranger = await createUser();
    const s = await member(stranger, team.orgId);
    expect(await joinRefusal(s.sb, s.ch)).toBe(`Unauthorized: You do not have permissions to read from this Channel topic: org:${team.orgId}`);
  });

  it("without a presence INSERT policy on the topic, track is refused", async () => {
    // user:<id> lets its user read broadcasts, but no policy covers presence there.
    const user = await createUser();
    const sb = await rtClient({ token: await tokenFor(user) });
    const ch = sb.channel(`user:${user.id}`, { config: { private: true } });
    await subscribe(ch);
    expect(await ch.track({ here: true })).toBe("error");
    expect(ch.presenceState()).toEqual({});
  });
});
