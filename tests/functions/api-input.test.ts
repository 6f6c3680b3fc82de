// The api's input boundary over HTTP: a SQLSTATE our SQL raises answers its 4xx (a plan limit is
// 402, not 500), a NUL character anywhere a string could reach SQL is a 400 that writes nothing,
// and the audit log's IP comes from the header the gateway sets, never from what a client forges.
import { randomUUID } from "node:crypto";
import { beforeAll, describe, expect, it } from "vitest";
import { createModel, giveCredits, stack, submit } from "../helpers/ai.ts";
import { admin, createTeam, type Team } from "../helpers/db.ts";
import { fakeCalls } from "../helpers/fake-ai.ts";
import { call, expectError, type JsonResponse } from "../helpers/http.ts";
import { apiError, expectUnchanged, openai, orgState } from "../helpers/openai.ts";
import { tokenFor } from "../helpers/supabase.ts";

const NUL = "\u0000";
const uniqueEmail = (tag: string) => `${tag}-${randomUUID().slice(0, 8)}@test.local`;

async function count(sql: string, params: unknown[]): Promise<number> {
  return (await admin.query(sql, params)).rows[0].n;
}
const invitationsOf = (orgId: string) => count("select count(*)::int as n from public.invitations where org_id = $1", [orgId]);
const documentsOf = (orgId: string) => count("select count(*)::int as n from content.documents where org_id = $1", [orgId]);

let team: Team;
let ownerToken: string;
let memberToken: string;
let model: string;
let modelKey: string;
beforeAll(async () => {
  team = await createTeam("Input");
  ownerToken = await tokenFor(team.owner);
  memberToken = await tokenFor(team.member);
  await giveCredits(team.orgId, 100_000);
  const m = await createModel({ modality: "text", deployments: [{ provider: "openai" }] });
  model = m.model;
  modelKey = m.deployments[0].key;
});

describe("a plan limit raised in SQL", () => {
  it("inviting into an org whose seats are all taken is 402 payment_required with the plan's sentence, and creates nothing", async () => {
    // The free plan has 3 seats; createTeam gives the org 4 members.
    const full = await createTeam("Full", { plan: null });
    const token = await tokenFor(full.owner);
    const before = await invitationsOf(full.orgId);
    const res = await call(`/api/orgs/${full.orgId}/invitations`, { token, json: { email: uniqueEmail("seatless"), role: "member" } });
    expectError(res, 402, "payment_required");
    expect(res.body.error.message).toMatch(/3 seats and all are taken; upgrade/);
    expect(await invitationsOf(full.orgId)).toBe(before);
    expect(await count("select count(*)::int as n from notify.events where org_id = $1 and type like '%invit%'", [full.orgId])).toBe(0);
  });
});

describe("a NUL character is refused before it reaches SQL", () => {
  /** The refusal: 400 invalid_request naming where the NUL was. */
  function expectNulRefused(res: JsonResponse, where: string) {
    expectError(res, 400, "invalid_request");
    expect(res.body.error.message).toContain("NUL");
    expect(res.body.error.details).toEqual([expect.objectContaining({ path: where })]);
  }

  it("in an invitation's email: 400, no invitation", async () => {
    const before = await invitationsOf(team.orgId);
    const res = await call(`/api/orgs/${team.orgId}/invitations`, { token: ownerToken, json: { email: `a${NUL}b@test.local` } });
    expectNulRefused(res, "body.email");
    expect(await invitationsOf(team.orgId)).toBe(before);
  });

  it("in a JSON key: 400, no invitation", async () => {
    const before = await invitationsOf(team.orgId);
    const res = await call(`/api/orgs/${team.orgId}/invitations`, { token: ownerToken, body: `{"email": "${uniqueEmail("key")}", "ro\\u0000le": "member"}` });
    expectNulRefused(res, "body.ro\\u0000le (a key)");
    expect(await invitationsOf(team.orgId)).toBe(before);
  });

  it("in a content document's title, and deep inside its body: 400, no document", async () => {
    const before = await documentsOf(team.orgId);
    const title = await call("/api/content/documents", { token: memberToken, json: { org_id: team.orgId, kind: "note", title: `Plan${NUL}` } });
    expectNulRefused(title, "body.title");
    const body = {
      type: "doc",
      content: [{ type: "paragraph", content: [{ type: "text", text: "fine" }, { type: "text", text: `not${NUL}fine` }] }],
    };
    const deep = await call("/api/content/documents", { token: memberToken, json: { org_id: team.orgId, kind: "note", title: "Plan", body } });
    expectNulRefused(deep, "body.body.content.0.content.1.text");
    expect(await documentsOf(team.orgId)).toBe(before);
  });

  it("in an AI job's prompt: 400, no job, no reservation, no provider call", async () => {
    const before = await orgState(team.orgId);
    const calls = (await fakeCalls(stack.fakeAiUrl, modelKey)).length;
    const res = await submit({ token: memberToken }, { org_id: team.orgId, modality: "text", model, input: { prompt: `hi${NUL}` } });
    expectNulRefused(res, "body.input.prompt");
    await expectUnchanged(team.orgId, before);
    expect((await fakeCalls(stack.fakeAiUrl, modelKey)).length).toBe(calls);
  });

  it("in a message to the OpenAI-compatible endpoint: the SDK gets a 400 in OpenAI's shape, nothing is charged", async () => {
    const before = await orgState(team.orgId);
    const client = openai(memberToken, team.orgId);
    const err = await apiError(client.chat.completions.create({ model, messages: [{ role: "user", content: `hello${NUL}` }] }));
    expect(err.status).toBe(400);
    expect(err.type).toBe("invalid_request_error");
    expect(err.message).toContain("NUL");
    await expectUnchanged(team.orgId, before);
  });

  it("in a query parameter (name or value) or the path: 400", async () => {
    expectNulRefused(await call(`/api/ai/jobs?org_id=${team.orgId}&before=2026-01-01%00`, { token: memberToken }), "query.before");
    expectNulRefused(await call(`/api/ai/jobs?st%00atus=queued`, { token: memberToken }), "query.st\\u0000atus");
    expectNulRefused(await call(`/api/content/documents/%00`, { token: memberToken }), "path");
    expectNulRefused(await call(`/api/orgs/${team.orgId}%00/invitations`, { token: ownerToken, json: { email: uniqueEmail("path") } }), "path");
  });

  it("in a form field (one-click unsubscribe): 400", async () => {
    const res = await call("/api/unsubscribe?token=abc", {
      body: `List-Unsubscribe=One-Click&x=${encodeURIComponent(NUL)}`,
      headers: { "content-type": "application/x-www-form-urlencoded" },
    });
    expectNulRefused(res, "body.x");
  });

  it("text that only spells a backslash-u-0000, or an escaped backslash before it, is not a NUL and passes", async () => {
    const email = uniqueEmail("plain");
    const res = await call(`/api/orgs/${team.orgId}/invitations`, { token: ownerToken, body: `{"email": "${email}", "role": "member"}` });
    expect(res.status, res.raw).toBe(201);
    const doc = await call("/api/content/documents", { token: memberToken, body: JSON.stringify({ org_id: team.orgId, kind: "note", title: "a \\u0000 b" }) });
    expect(doc.status, doc.raw).toBe(201);
    expect(doc.body.title).toBe("a \\u0000 b");
  });
});

describe("the client IP in the audit log", () => {
  async function invitationAuditIp(headers: Record<string, string>) {
    const email = uniqueEmail("ip");
    const res = await call(`/api/orgs/${team.orgId}/invitations`, { token: ownerToken, json: { email }, headers });
    expect(res.status, res.raw).toBe(201);
    const { rows } = await admin.query(
      "select ip from notify.audit_log where org_id = $1 and target_table = 'public.invitations' and request_id = $2",
      [team.orgId, res.headers.get("x-request-id")],
    );
    expect(rows.length).toBeGreaterThan(0);
    return rows.map((r) => r.ip);
  }

  it("a forged X-Forwarded-For, X-Real-IP or CF-Connecting-IP never reaches it: the gateway's peer address does", async () => {
    const ips = await invitationAuditIp({
      "x-forwarded-for": "203.0.113.7, 198.51.100.1",
      "x-real-ip": "203.0.113.8",
      "cf-connecting-ip": "203.0.113.9",
    });
    // The test client reaches the local gateway over loopback; that is the address it vouches for.
    expect(ips.every((ip) => ip === "127.0.0.1"), String(ips)).toBe(true);
  });
});
