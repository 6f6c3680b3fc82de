// Tokens and write permissions on the Realtime stand-in, through supabase-js: a forged or
// expired token is refused at join, a bad API key at the upgrade, a token that runs out closes
// the channel, a refreshed token is checked again, and a client broadcast on a private channel
// without an INSERT policy is dropped without a word.
import { SignJWT } from "jose";
import { describe, expect, inject, it } from "vitest";
import { gotrueClaims } from "../../scripts/lib/keys.ts";
import { admin, createTeam, rpc } from "../helpers/db.ts";
import { broadcasts, Inbox, joinRefusal, refusedUpgrade, rtClient, subscribe, type Status } from "../helpers/realtime.ts";
import { tokenFor } from "../helpers/supabase.ts";

const forge = (claims: Record<string, unknown>) =>
  new SignJWT(claims)
    .setProtectedHeader({ alg: "HS256" })
    .setIssuedAt()
    .setExpirationTime("1h")
    .sign(new TextEncoder().encode("not-the-project-secret-not-the-project-secret"));
const stack = inject("stack");

describe("tokens at connect and join", () => {
  it("a forged token is refused at join with Realtime's reason", async () => {
    const team = await createTeam("Rt forged");
    const sb = await rtClient({ token: await forge({ ...gotrueClaims(team.member), role: "authenticated" }) });
    expect(await joinRefusal(sb, sb.channel(`org:${team.orgId}`, { config: { private: true } }))).toBe(
      "JwtSignatureError: Failed to validate JWT signature",
    );
    // The same token is no better on a public channel.
    expect(await joinRefusal(sb, sb.channel("lobby"))).toBe("JwtSignatureError: Failed to validate JWT signature");
  });

  it("an expired token is refused at join with how long ago it expired", async () => {
    const team = await createTeam("Rt expired");
    const sb = await rtClient({ token: await tokenFor(team.member, { expiresIn: Math.floor(Date.now() / 1000) - 30 }) });
    expect(await joinRefusal(sb, sb.channel(`org:${team.orgId}`, { config: { private: true } }))).toMatch(
      /^InvalidJWTToken: Token has expired (3\d) seconds ago$/,
    );
  });

  it("a token without exp is refused: Realtime requires role and exp", async () => {
    const team = await createTeam("Rt noexp");
    const noExp = await new SignJWT({ ...gotrueClaims(team.member) })
      .setProtectedHeader({ alg: "HS256" })
      .sign(new TextEncoder().encode(stack.jwtSecret));
    const sb = await rtClient({ token: noExp });
    expect(await joinRefusal(sb, sb.channel("lobby"))).toBe("InvalidJWTToken: Fields `role` and `exp` are required in JWT");
  });

  it("a bad or missing API key is refused on the upgrade with 401", async () => {
    const forged = await forge({ role: "anon" });
    expect(await refusedUpgrade(`?apikey=${forged}&vsn=2.0.0`)).toEqual({ status: 401, body: JSON.stringify({ error: "Failed to validate JWT signature" }) });
    expect(await refusedUpgrade(`?apikey=garbage&vsn=2.0.0`)).toEqual({ status: 401, body: JSON.stringify({ error: "The token provided is not a valid JWT" }) });
    expect(await refusedUpgrade(`?vsn=2.0.0`)).toEqual({ status: 401, body: JSON.stringify({ error: "API key is missing" }) });
  });
});

describe("token expiry and refresh", () => {
  it("a channel whose token expires gets Realtime's system error, then closes for good", async () => {
    const team = await createTeam("Rt expiry");
    const sb = await rtClient({ token: await tokenFor(team.member, { expiresIn: "3s" }) });
    const ch = sb.channel(`org:${team.orgId}`, { config: { private: true } });
    const system = new Inbox<any>();
    ch.on("system", {}, (p) => system.push(p));
    const statuses = new Inbox<Status>();
    await subscribe(ch, statuses);
    const closed = await statuses.waitFor((s) => s.status === "CLOSED", 10_000, "CLOSED");
    expect(closed).toEqual({ status: "CLOSED", error: undefined });
    expect(await system.waitFor()).toEqual({
      extension: "system",
      status: "error",
      message: expect.stringMatching(/^Token has expired \d+ seconds ago$/),
      channel: `org:${team.orgId}`,
    });
    expect(sb.getChannels()).toHaveLength(0);
  });

  it("a refreshed token keeps the channel while its user may still read, and closes it once they may not", async () => {
    const team = await createTeam("Rt refresh");
    await rpc(team.owner, "update_org", { p_org_id: team.orgId, p_require_mfa: true }, { aal: "aal2" });
    let token = await tokenFor(team.member, { aal: "aal2" });
    const sb = await rtClient({ token: async () => token });
    const ch = sb.channel(`org:${team.orgId}`, { config: { private: true } });
    const inbox = broadcasts(ch);
    const system = new Inbox<any>();
    ch.on("system", {}, (p) => system.push(p));
    const statuses = new Inbox<Status>();
    await subscribe(ch, statuses);

    // A fresh aal2 token: checked again, still allowed, still receiving.
    token = await tokenFor(team.member, { aal: "aal2", expiresIn: "2h" });
    await sb.realtime.setAuth();
    await admin.query("select realtime.send($1, 'after.refresh', $2)", [{}, `org:${team.orgId}`]);
    await inbox.waitFor((m) => m.event === "after.refresh");
    expect(system.items).toEqual([]);

    // The session drops to aal1: the org's MFA rule no longer lets this token read.
    token = await tokenFor(team.member, { aal: "aal1" });
    await sb.realtime.setAuth();
    expect(await system.waitFor()).toEqual({
      extension: "system",
      status: "error",
      message: `You no longer have permission to read from this Channel topic: org:${team.orgId}`,
      channel: `org:${team.orgId}`,
    });
    await statuses.waitFor((s) => s.status === "CLOSED");
  });

  it("a forged refresh closes the channel with the verification message", async () => {
    const team = await createTeam("Rt forged refresh");
    let token = await tokenFor(team.member);
    const sb = await rtClient({ token: async () => token });
    const ch = sb.channel(`org:${team.orgId}`, { config: { private: true } });
    const system = new Inbox<any>();
    ch.on("system", {}, (p) => system.push(p));
    const statuses = new Inbox<Status>();
    await subscribe(ch, statuses);
    token = await forge(gotrueClaims(team.member));
    await sb.realtime.setAuth();
    expect((await system.waitFor()).message).toBe("Failed to validate JWT signature");
    await statuses.waitFor((s) => s.status === "CLOSED");
  });
});

describe("client broadcast on private channels", () => {
  it("without an INSERT policy a member's broadcast is dropped: no delivery, no ack", async () => {
    const team = await createTeam("Rt deny");
    const sender = await rtClient({ token: await tokenFor(team.member) });
    const receiver = await rtClient({ token: await tokenFor(team.admin) });
    const topic = `org:${team.orgId}`;
    const out = sender.channel(topic, { config: { private: true, broadcast: { ack: true, self: true } } });
    const own = broadcasts(out);
    await subscribe(out);
    const inCh = receiver.channel(topic, { config: { private: true } });
    const inbox = broadcasts(inCh);
    await subscribe(inCh);

    expect(await out.send({ type: "broadcast", event: "cursor", payload: { x: 1 } }, { timeout: 1500 })).toBe("timed out");
    // Control: the database's broadcast after it reaches both, so the client one had its chance.
    await admin.query("select realtime.send($1, 'control', $2)", [{}, topic]);
    await inbox.waitFor((m) => m.event === "control");
    await own.waitFor((m) => m.event === "control");
    expect(inbox.items.map((m) => m.event)).not.toContain("cursor");
    expect(own.items.map((m) => m.event)).not.toContain("cursor");
  });

  it("the REST API skips private messages the caller may not send, and refuses a single one with 403", async () => {
    const team = await createTeam("Rt rest deny");
    const token = await tokenFor(team.member);
    const receiver = await rtClient({ token });
    const topic = `org:${team.orgId}`;
    const ch = receiver.channel(topic, { config: { private: true } });
    const inbox = broadcasts(ch);
    await subscribe(ch);
    const headers = { apikey: stack.anonKey, authorization: `Bearer ${token}`, "content-type": "application/json" };
    const batch = await fetch(`${stack.supabaseUrl}/realtime/v1/api/broadcast?apikey=${stack.anonKey}&vsn=2.0.0`, {
      method: "POST",
      headers,
      body: JSON.stringify({ messages: [{ topic, event: "rest.denied", payload: { a: 1 }, private: true }] }),
    });
    expect(batch.status).toBe(202);
    const single = await fetch(`${stack.supabaseUrl}/realtime/v1/api/broadcast/${encodeURIComponent(topic)}/events/rest.single?private=true`, {
      method: "POST",
      headers,
      body: JSON.stringify({ a: 1 }),
    });
    expect(single.status).toBe(403);
    expect(await single.json()).toEqual({ message: "Unauthorized" });
    const unauth = await fetch(`${stack.supabaseUrl}/realtime/v1/api/broadcast`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
    expect(unauth.status).toBe(401);

    await admin.query("select realtime.send($1, 'control', $2)", [{}, topic]);
    await inbox.waitFor((m) => m.event === "control");
    expect(inbox.items.map((m) => m.event)).not.toContain("rest.denied");
    expect(inbox.items.map((m) => m.event)).not.toContain("rest.single");
  });
});
