// POST /api/orgs/{org_id}/invitations end to end: the row, the queued email through the
// worker and SMTP into the sink, the token in it, and every refusal leaving no trace.
import { randomUUID } from "node:crypto";
import { beforeAll, describe, expect, it } from "vitest";
import { userToken } from "../../scripts/lib/keys.ts";
import { admin, createTeam, createUser, roleOf, rpc, stack, type Team } from "../helpers/db.ts";
import { call, expectError, mailTo, waitForMail } from "../helpers/http.ts";
import { bossJobs, waitForJobCompleted, WAIT_MS } from "../helpers/notifications.ts";

const uniqueEmail = (tag: string) => `${tag}-${randomUUID().slice(0, 8)}@test.local`;

async function invitationsFor(email: string) {
  const { rows } = await admin.query("select id, org_id, email, role, accepted_at, revoked_at from public.invitations where email = $1", [
    email,
  ]);
  return rows;
}

let team: Team;
let ownerToken: string;
beforeAll(async () => {
  team = await createTeam("Acme");
  ownerToken = await userToken(stack.jwtSecret, team.owner);
});

const invite = (orgId: string, token: string, body: unknown) => call(`/api/orgs/${orgId}/invitations`, { token, json: body });

/**
 * Waits for the invitation's one invitation.send job to complete (the email is sent inside it),
 * then returns the mail to `email`, of which there must be exactly `count`.
 */
async function sentInvitation(invitationId: string, email: string, count = 1) {
  const queued = await bossJobs("invitation.send", { invitation_id: invitationId });
  expect(queued, `invitation.send jobs for ${invitationId}`).toHaveLength(1);
  const job = await waitForJobCompleted(queued[0].id);
  // Sent on the first attempt: a retry after sending would have been a second email.
  expect(job.retry_count).toBe(0);
  const mails = await waitForMail(email, { count, timeoutMs: WAIT_MS });
  expect(mails).toHaveLength(count);
  return { job, mails };
}

const tokenOf = (text: string) => new URL(/https?:\/\/\S+\/invitations\/accept\?token=\S+/.exec(text)![0]).searchParams.get("token")!;

describe("inviting by email", () => {
  it("creates the invitation, emails an accept link exactly once, and the token in it works", async () => {
    const email = uniqueEmail("invitee");
    const res = await invite(team.orgId, ownerToken, { email, role: "member" });
    expect(res.status, res.raw).toBe(201);
    expect(res.body).toEqual({
      invitation_id: expect.stringMatching(/^[0-9a-f-]{36}$/),
      email,
      role: "member",
      expires_at: expect.any(String),
    });
    expect(res.body.expires_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/);
    const expires = new Date(res.body.expires_at).getTime();
    expect(Number.isNaN(expires)).toBe(false);
    // 168 hours by default.
    expect(Math.abs(expires - (Date.now() + 168 * 3600_000))).toBeLessThan(5 * 60_000);

    const rows = await invitationsFor(email);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ id: res.body.invitation_id, org_id: team.orgId, role: "member", accepted_at: null, revoked_at: null });

    const [{ name: orgName }] = (await admin.query("select name from public.orgs where id = $1", [team.orgId])).rows;
    const { mails: [mail] } = await sentInvitation(res.body.invitation_id, email);
    expect(mail.to).toEqual([email]);
    expect(mail.subject).toContain(orgName);
    expect(mail.html).toContain(orgName);
    const link = /https?:\/\/\S+\/invitations\/accept\?token=\S+/.exec(mail.text)?.[0];
    expect(link, mail.text).toBeDefined();
    const token = new URL(link!).searchParams.get("token")!;
    expect(token.length).toBeGreaterThanOrEqual(32);

    const invitee = await createUser({ email });
    const [accepted] = await rpc<{ accept_invitation: string }>(invitee, "accept_invitation", { p_token: token });
    expect(accepted.accept_invitation).toBe(team.orgId);
    expect(await roleOf(team.orgId, invitee.id)).toBe("member");
    expect((await invitationsFor(email))[0].accepted_at).not.toBeNull();
  });

  it("inviting the same email again replaces the pending invitation and revokes the old token", async () => {
    const email = uniqueEmail("again");
    const first = await invite(team.orgId, ownerToken, { email, role: "viewer", expires_in_hours: 1 });
    expect(first.status, first.raw).toBe(201);
    expect(Math.abs(new Date(first.body.expires_at).getTime() - (Date.now() + 3600_000))).toBeLessThan(5 * 60_000);
    const { mails: firstMail } = await sentInvitation(first.body.invitation_id, email);
    const second = await invite(team.orgId, ownerToken, { email, role: "member" });
    expect(second.status, second.raw).toBe(201);
    expect(second.body.invitation_id).not.toBe(first.body.invitation_id);
    const { mails: both } = await sentInvitation(second.body.invitation_id, email, 2);
    const oldToken = tokenOf(firstMail[0].text);
    const newToken = tokenOf(both.find((m) => m.id !== firstMail[0].id)!.text);
    expect(newToken).not.toBe(oldToken);
    const rows = await invitationsFor(email);
    expect(rows.filter((r) => r.revoked_at === null)).toHaveLength(1);
    const invitee = await createUser({ email });
    await expect(rpc(invitee, "accept_invitation", { p_token: oldToken })).rejects.toThrow(/revoked/);
    await rpc(invitee, "accept_invitation", { p_token: newToken });
    expect(await roleOf(team.orgId, invitee.id)).toBe("member");
  });

  it("normalizes the email address to lower case", async () => {
    const email = uniqueEmail("mixed");
    const res = await invite(team.orgId, ownerToken, { email: `  ${email.toUpperCase()} ` });
    expect(res.status, res.raw).toBe(201);
    expect(res.body.email).toBe(email);
    expect(res.body.role).toBe("member");
    expect(await invitationsFor(email)).toHaveLength(1);
  });

  it("no plain token is ever stored: not in the invitation row, not in the queued job or its output", async () => {
    const email = uniqueEmail("notoken");
    const res = await invite(team.orgId, ownerToken, { email, role: "member" });
    expect(res.status, res.raw).toBe(201);
    const { job, mails: [mail] } = await sentInvitation(res.body.invitation_id, email);
    const token = tokenOf(mail.text);
    // The job carries the invitation's id and nothing else; the token is made when it sends.
    expect(job.data).toEqual({ invitation_id: res.body.invitation_id });
    expect(JSON.stringify(job.output)).not.toContain(token);
    const { rows: [row] } = await admin.query("select to_jsonb(i)::text as t from public.invitations i where id = $1", [res.body.invitation_id]);
    expect(row.t).not.toContain(token);
    // Nor anywhere else in the queue's tables.
    const { rows: [q] } = await admin.query(
      "select count(*)::int as n from pgboss.job where strpos(coalesce(data::text, '') || coalesce(output::text, ''), $1) > 0", [token]);
    expect(q.n).toBe(0);
    // And the token in the mail is the live one.
    const invitee = await createUser({ email });
    await rpc(invitee, "accept_invitation", { p_token: token });
    expect(await roleOf(team.orgId, invitee.id)).toBe("member");
  });
});

describe("refused invitations change nothing", () => {
  async function expectNothingFor(email: string) {
    expect(await invitationsFor(email)).toEqual([]);
  }

  it("malformed JSON -> 400 invalid_request", async () => {
    const email = uniqueEmail("badjson");
    const res = await call(`/api/orgs/${team.orgId}/invitations`, {
      token: ownerToken,
      body: `{"email": "${email}", "role": `,
    });
    expectError(res, 400, "invalid_request");
    await expectNothingFor(email);
  });

  it("an unknown field -> 400 with details", async () => {
    const email = uniqueEmail("extra");
    const res = await invite(team.orgId, ownerToken, { email, role: "member", admin: true });
    expectError(res, 400, "invalid_request");
    expect(Array.isArray(res.body.error.details)).toBe(true);
    expect(res.body.error.details.length).toBeGreaterThan(0);
    expect(res.body.error.details[0]).toEqual({ path: expect.any(String), message: expect.any(String) });
    expect(JSON.stringify(res.body.error.details)).toContain("admin");
    await expectNothingFor(email);
  });

  it("a bad email -> 400", async () => {
    const res = await invite(team.orgId, ownerToken, { email: "not-an-email", role: "member" });
    expectError(res, 400, "invalid_request");
    expect(JSON.stringify(res.body.error.details)).toContain("email");
    await expectNothingFor("not-an-email");
  });

  it("a wrongly typed field -> 400", async () => {
    const email = uniqueEmail("typed");
    const res = await invite(team.orgId, ownerToken, { email, expires_in_hours: "soon" });
    expectError(res, 400, "invalid_request");
    await expectNothingFor(email);
  });

  it("an unknown role -> 400", async () => {
    const email = uniqueEmail("norole");
    const res = await invite(team.orgId, ownerToken, { email, role: "emperor" });
    expectError(res, 400, "invalid_request");
    await expectNothingFor(email);
  });

  it("a non-uuid org id -> 400", async () => {
    const email = uniqueEmail("nouuid");
    const res = await invite("not-a-uuid", ownerToken, { email, role: "member" });
    expectError(res, 400, "invalid_request");
    await expectNothingFor(email);
  });

  it("a body over PLINTH_MAX_BODY_BYTES -> 413 payload_too_large", async () => {
    const email = uniqueEmail("huge");
    const body = JSON.stringify({ email, role: "member", padding: "x".repeat(70_000) });
    expect(Buffer.byteLength(body)).toBeGreaterThan(65536);
    const res = await call(`/api/orgs/${team.orgId}/invitations`, { token: ownerToken, body });
    expectError(res, 413, "payload_too_large");
    await expectNothingFor(email);
  });

  it("an oversized body sent chunked (no Content-Length) -> 413", async () => {
    const email = uniqueEmail("chunked");
    const payload = new TextEncoder().encode(JSON.stringify({ email, role: "member", padding: "x".repeat(70_000) }));
    const stream = new ReadableStream<Uint8Array>({
      start(ctrl) {
        for (let i = 0; i < payload.length; i += 8192) ctrl.enqueue(payload.slice(i, i + 8192));
        ctrl.close();
      },
    });
    const res = await fetch(`${stack.functionsUrl}/api/orgs/${team.orgId}/invitations`, {
      method: "POST",
      headers: { authorization: `Bearer ${ownerToken}`, "content-type": "application/json" },
      body: stream,
      duplex: "half",
    } as RequestInit);
    const raw = await res.text();
    expect(res.status, raw).toBe(413);
    expect(JSON.parse(raw).error.code).toBe("payload_too_large");
    await expectNothingFor(email);
  });

  it("JSON that is not an object (null, array, string) -> 400", async () => {
    for (const body of ["null", "[]", '"x@test.local"', "42"]) {
      const res = await call(`/api/orgs/${team.orgId}/invitations`, { token: ownerToken, body });
      expectError(res, 400, "invalid_request");
    }
  });

  it("a JSON body without a JSON content type -> 400, not 5xx", async () => {
    const email = uniqueEmail("ctype");
    const res = await call(`/api/orgs/${team.orgId}/invitations`, {
      token: ownerToken,
      body: JSON.stringify({ email, role: "member" }),
      headers: { "content-type": "text/plain" },
    });
    expect(res.status, res.raw).toBeGreaterThanOrEqual(400);
    expect(res.status, res.raw).toBeLessThan(500);
    expect(typeof res.body?.error?.code, res.raw).toBe("string");
    await expectNothingFor(email);
  });

  it("an empty role and an out-of-range expiry -> 400", async () => {
    const email = uniqueEmail("ranges");
    expectError(await invite(team.orgId, ownerToken, { email, role: "" }), 400, "invalid_request");
    expectError(await invite(team.orgId, ownerToken, { email, expires_in_hours: 0 }), 400, "invalid_request");
    expectError(await invite(team.orgId, ownerToken, { email, expires_in_hours: 721 }), 400, "invalid_request");
    await expectNothingFor(email);
  });

  it("inviting into a personal org -> 403", async () => {
    const [personal] = (await admin.query(
      "select o.id from public.orgs o join public.org_members m on m.org_id = o.id where o.kind = 'personal' and m.user_id = $1",
      [team.owner.id],
    )).rows;
    const email = uniqueEmail("personal");
    expectError(await invite(personal.id, ownerToken, { email }), 403, "forbidden");
    await expectNothingFor(email);
  });

  it("a member without members.manage -> 403 forbidden, no row and no email", async () => {
    const email = uniqueEmail("bymember");
    const res = await invite(team.orgId, await userToken(stack.jwtSecret, team.member), { email, role: "member" });
    expectError(res, 403, "forbidden");
    // The email job reads its address from a committed invitation row: with no row for this
    // address (re-read after the answer), no invitation email to it can ever be sent.
    await expectNothingFor(email);
    expect(await mailTo(email)).toEqual([]);
  });

  it("a stranger -> 404, the org's existence is not revealed", async () => {
    const stranger = await createUser();
    const email = uniqueEmail("bystranger");
    const res = await invite(team.orgId, await userToken(stack.jwtSecret, stranger), { email, role: "member" });
    expectError(res, 404, "not_found");
    await expectNothingFor(email);
    // Same answer as for an org that does not exist at all.
    expectError(await invite(randomUUID(), await userToken(stack.jwtSecret, stranger), { email, role: "member" }), 404, "not_found");
  });

  it("an admin inviting as owner -> 403", async () => {
    const email = uniqueEmail("asowner");
    const res = await invite(team.orgId, await userToken(stack.jwtSecret, team.admin), { email, role: "owner" });
    expectError(res, 403, "forbidden");
    await expectNothingFor(email);
  });

  it("inviting someone who is already a member -> 409", async () => {
    const res = await invite(team.orgId, ownerToken, { email: team.viewer.email, role: "member" });
    expectError(res, 409, "conflict");
    expect(await invitationsFor(team.viewer.email)).toEqual([]);
  });

  it("no credentials -> 401", async () => {
    const email = uniqueEmail("anon");
    const res = await call(`/api/orgs/${team.orgId}/invitations`, { json: { email, role: "member" } });
    expectError(res, 401, "unauthorized");
    await expectNothingFor(email);
  });
});

describe("routing and the OpenAPI document", () => {
  it("an unknown route -> 404 JSON", async () => {
    expectError(await call("/api/nope"), 404, "not_found");
    expectError(await call(`/api/orgs/${team.orgId}/invitations`, { method: "GET", token: ownerToken }), 404, "not_found");
  });

  it("an unknown function -> 404 JSON", async () => {
    expectError(await call("/nope/anything"), 404, "not_found");
  });

  it("GET /api/openapi.json describes the routes", async () => {
    const res = await call("/api/openapi.json");
    expect(res.status, res.raw).toBe(200);
    expect(res.body.openapi).toBe("3.1.0");
    expect(Object.keys(res.body.paths)).toEqual(expect.arrayContaining(["/api/me", "/api/health", "/api/orgs/{org_id}/invitations"]));
    expect(res.body.paths["/api/orgs/{org_id}/invitations"].post).toBeDefined();
    expect(res.body.components.schemas.InviteRequest).toBeDefined();
    expect(Object.keys(res.body.components.schemas.InviteRequest.properties)).toEqual(
      expect.arrayContaining(["email", "role", "expires_in_hours"]),
    );
  });
});
