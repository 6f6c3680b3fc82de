// Bad input to the video routes gets a 4xx with the standard error body and changes nothing:
// no upload, no job, no reservation. Missing or forged credentials are 401; an API key cannot
// act for a person (403).
import { randomUUID } from "node:crypto";
import { beforeAll, describe, expect, it } from "vitest";
import { SEED_API_KEYS } from "../../scripts/lib/seed-users.ts";
import { admin, createTeam } from "../helpers/db.ts";
import { call, expectError } from "../helpers/http.ts";
import { giveCredits } from "../helpers/ai.ts";
import { tokenFor } from "../helpers/supabase.ts";
import { passedPhoto } from "../helpers/video.ts";

let team: Awaited<ReturnType<typeof createTeam>>;
let token: string;
let photo: string;

beforeAll(async () => {
  team = await createTeam("Bad input");
  await giveCredits(team.orgId, 100);
  token = await tokenFor(team.member);
  photo = await passedPhoto(token, team.orgId, team.member.id);
});

async function counts() {
  const { rows } = await admin.query(
    `select (select count(*)::int from video.jobs where org_id = $1) as jobs, (select count(*)::int from video.uploads where org_id = $1) as uploads,
            (select count(*)::int from billing.credit_reservations where org_id = $1) as reservations`, [team.orgId]);
  return rows[0];
}

describe("bad input changes nothing", () => {
  const script = { text: "Hello", voice: "en-US-JennyNeural" };
  const jobCases: [string, () => Record<string, unknown>, number, string][] = [
    ["an unknown tier", () => ({ org_id: team.orgId, tier: "ultra", photo_id: photo, script }), 400, "invalid_request"],
    ["a script and a voice track", () => ({ org_id: team.orgId, tier: "balanced", photo_id: photo, script, audio_id: photo }), 400, "invalid_request"],
    ["neither a script nor a voice track", () => ({ org_id: team.orgId, tier: "balanced", photo_id: photo }), 400, "invalid_request"],
    ["a script longer than the tier makes", () => ({ org_id: team.orgId, tier: "economy", photo_id: photo, script: { text: "z".repeat(5000), voice: "v" } }), 400, "invalid_request"],
    ["a NUL in the script", () => ({ org_id: team.orgId, tier: "balanced", photo_id: photo, script: { text: "a\u0000b", voice: "v" } }), 400, "invalid_request"],
    ["a bad ratio", () => ({ org_id: team.orgId, tier: "balanced", photo_id: photo, script, ratio: "2:1" }), 400, "invalid_request"],
    ["a photo id that is not a uuid", () => ({ org_id: team.orgId, tier: "balanced", photo_id: "face.png", script }), 400, "invalid_request"],
    ["a photo of no upload", () => ({ org_id: team.orgId, tier: "balanced", photo_id: randomUUID(), script }), 400, "invalid_request"],
    ["an unknown field", () => ({ org_id: team.orgId, tier: "balanced", photo_id: photo, script, price: 0 }), 400, "invalid_request"],
    ["another org", () => ({ org_id: randomUUID(), tier: "balanced", photo_id: photo, script }), 403, "forbidden"],
  ];
  it.each(jobCases)("POST /api/video/jobs with %s", async (_name, body, status, code) => {
    const before = await counts();
    expectError(await call("/api/video/jobs", { token, json: body() }), status, code);
    expect(await counts()).toEqual(before);
  });

  it("uploads: a bad file name, a missing org, an unknown field", async () => {
    const before = await counts();
    expectError(await call("/api/video/uploads", { token, json: { org_id: team.orgId, filename: "a/b.png" } }), 400, "invalid_request");
    expectError(await call("/api/video/uploads", { token, json: { filename: "a.png" } }), 400, "invalid_request");
    expectError(await call("/api/video/uploads", { token, json: { org_id: team.orgId, filename: "a.png", path: "x" } }), 400, "invalid_request");
    expectError(await call("/api/video/uploads", { token, body: "{not json", headers: { "content-type": "application/json" } }), 400, "invalid_request");
    expectError(await call(`/api/video/uploads?status=lost`, { token }), 400, "invalid_request");
    expect(await counts()).toEqual(before);
  });

  it("ids that are not uuids are 400; unknown ones 404", async () => {
    expectError(await call("/api/video/jobs/nope", { token }), 400, "invalid_request");
    expectError(await call(`/api/video/jobs/${randomUUID()}`, { token }), 404, "not_found");
    expectError(await call(`/api/video/jobs/${randomUUID()}/cancel`, { token, method: "POST" }), 404, "not_found");
    expectError(await call(`/api/video/uploads/${randomUUID()}`, { token, method: "DELETE" }), 404, "not_found");
    expectError(await call(`/api/video/privacy/requests/${randomUUID()}`, { token }), 404, "not_found");
  });

  it("the cost calculator: seconds out of range, an unknown tier", async () => {
    expectError(await call("/api/video/cost-calculator", { token, json: { seconds: -1 } }), 400, "invalid_request");
    expectError(await call("/api/video/cost-calculator", { token, json: { seconds: 20, tier: "ultra" } }), 400, "invalid_request");
    expectError(await call("/api/video/cost-calculator", { token, json: { seconds: 100, tier: "economy" } }), 400, "invalid_request");
    const ok = await call("/api/video/cost-calculator", { token, json: { seconds: 100 } });
    // Economy makes at most 60 s; other files' own tiers may be listed too.
    expect(ok.body.quotes).toEqual(expect.arrayContaining([
      expect.objectContaining({ tier: "balanced", inr_minor: 1500, usd_cents: 18, credits: 18 }),
      expect.objectContaining({ tier: "premium", inr_minor: 2000, usd_cents: 24, credits: 24 }),
    ]));
    expect(ok.body.quotes.map((q: { tier: string }) => q.tier)).not.toContain("economy");
    const one = await call("/api/video/cost-calculator", { token, json: { seconds: 10, tier: "economy" } });
    expect(one.body.quotes).toEqual([expect.objectContaining({ tier: "economy", unit: "image", inr_minor: 39, credits: 1 })]);
  });

  it("credentials: none or forged is 401; an API key is not a person (403)", async () => {
    expectError(await call("/api/video/jobs", { json: {} }), 401, "unauthorized");
    expectError(await call("/api/video/jobs", { token: `${token.slice(0, -4)}abcd`, json: {} }), 401, "invalid_token");
    expectError(await call("/api/video/privacy/export", { apiKey: SEED_API_KEYS[0].key, method: "POST" }), 403, "user_required");
    expectError(await call("/api/video/uploads", { apiKey: SEED_API_KEYS[0].key, json: { org_id: team.orgId, filename: "a.png" } }), 403, "user_required");
  });
});
