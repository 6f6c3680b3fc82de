// The template batch script (scripts/deck-templates.ts, npm run deck:templates): distinct,
// repeatable prompts; rate limits honoured (429 waits for Retry-After, bounded retries); a stop on
// 402; and, end to end through the generation api and the stack's worker on the keyless local
// provider, N templates made in review, then a rerun that resumes (reuses what exists, makes the
// rest) without generating anything twice.
import { beforeAll, describe, expect, it } from "vitest";
import { type BatchDeps, type BatchOptions, promptFor, retryAfterMs, runTemplateBatch, TOPICS } from "../../scripts/deck-templates.ts";
import { giveCredits, stack } from "../helpers/ai.ts";
import { orgRoute } from "../helpers/ai-jobs.ts";
import { admin, createTeam, type Team } from "../helpers/db.ts";
import { tokenFor } from "../helpers/supabase.ts";

const OPTS: Omit<BatchOptions, "auth" | "url"> = { count: 1, category: "pitch", locale: "en", tier: "basic", cards: 2, images: false, concurrency: 1, pollMs: 100 };

describe("prompts", () => {
  it("are distinct within a category for thousands of templates, and the same on a rerun", () => {
    for (const category of [...Object.keys(TOPICS), "custom_cat"]) {
      const prompts = Array.from({ length: 2000 }, (_, i) => promptFor(category, i));
      expect(new Set(prompts.map((p) => p.toLowerCase().replace(/\s+/g, " ").trim())).size).toBe(2000);
      expect(promptFor(category, 17)).toBe(prompts[17]);
      expect(prompts[0]).toContain(category.replace("_", " "));
    }
  });

  it("Retry-After in seconds or as a date", () => {
    expect(retryAfterMs("2")).toBe(2000);
    expect(retryAfterMs("0.5")).toBe(500);
    expect(retryAfterMs(new Date(Date.now() + 3000).toUTCString())).toBeGreaterThan(1000);
    expect(retryAfterMs(null)).toBeNull();
    expect(retryAfterMs("soon")).toBeNull();
  });
});

/** A scripted api: each POST or GET takes the next response for its kind. */
function fakeApi(script: { post: Response[]; get?: Response[] }) {
  const sleeps: number[] = [];
  const calls: { method: string; path: string; body?: any }[] = [];
  const deps: BatchDeps = {
    fetch: (async (url: string, init?: RequestInit) => {
      const method = init?.method ?? "GET";
      calls.push({ method, path: new URL(url).pathname, body: init?.body ? JSON.parse(String(init.body)) : undefined });
      const next = method === "POST" ? script.post.shift() : script.get?.shift();
      if (!next) throw new Error(`unscripted ${method}`);
      return next;
    }) as typeof fetch,
    sleep: async (ms) => {
      sleeps.push(ms);
    },
    log: () => {},
  };
  return { deps, sleeps, calls };
}
const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", ...headers } });
const GEN = "11111111-1111-4111-8111-111111111111";

describe("rate limits and failures (scripted api)", () => {
  const base = { ...OPTS, url: "http://api.test/functions/v1", auth: { token: "t" } };

  it("waits for Retry-After on 429, then goes on; a 5xx is retried with backoff", async () => {
    const api = fakeApi({
      post: [json(429, { error: { code: "rate_limited" } }, { "retry-after": "3" }), json(503, {}), json(202, { generationId: GEN })],
      get: [json(200, { status: "pending" }), json(200, { status: "completed", deckId: GEN })],
    });
    const s = await runTemplateBatch(base, api.deps);
    expect(s).toMatchObject({ made: 1, reused: 0, failed: 0 });
    expect(api.sleeps.slice(0, 2)).toEqual([3000, 1000]);
    const post = api.calls.find((c) => c.method === "POST")!;
    expect(post.path).toBe("/functions/v1/api/deck/generations");
    expect(post.body).toMatchObject({ saveAsTemplate: { category: "pitch", locale: "en", batchKey: "pitch:0" }, numCards: 2, imageOptions: { source: "noImages" } });
  });

  it("gives up after a bounded number of 429s (the template counts as failed)", async () => {
    const api = fakeApi({ post: Array.from({ length: 4 }, () => json(429, {}, { "retry-after": "1" })) });
    const s = await runTemplateBatch({ ...base, maxRetries: 3 }, api.deps);
    expect(s).toMatchObject({ made: 0, failed: 1 });
    expect(api.calls).toHaveLength(4);
    expect(s.outcomes[0].error).toMatch(/429 after 4 tries/);
  });

  it("stops the batch on 402 (credits) and on 400; a 409 (same prompt elsewhere) is skipped; 200 is a reused one", async () => {
    const stop = fakeApi({ post: [json(402, { error: { message: "insufficient credits" } })] });
    const s = await runTemplateBatch({ ...base, count: 5 }, stop.deps);
    expect(s.stopped).toMatch(/out of credits at pitch:0/);
    expect(stop.calls).toHaveLength(1);
    const mixed = fakeApi({
      post: [json(409, { error: { message: "same prompt" } }), json(200, { generationId: GEN })],
      get: [json(200, { status: "failed", error: { message: "boom" } })],
    });
    const m = await runTemplateBatch({ ...base, count: 2 }, mixed.deps);
    expect(m).toMatchObject({ skipped: 1, failed: 1, made: 0 });
    expect(m.outcomes[1].error).toMatch(/boom/);
  });
});

describe("end to end (generation api, worker, keyless local provider)", () => {
  let team: Team;
  beforeAll(async () => {
    team = await createTeam("Batch");
    await giveCredits(team.orgId, 10_000);
    await orgRoute(team.orgId, "text", "balanced", ["local/text"]);
  });

  async function templates() {
    const { rows } = await admin.query(
      `select t.batch_key, t.status, t.category, t.locale, t.prompt, t.prompt_hash, d.is_template, d.kind
       from deck.templates t join content.documents d on d.id = t.document_id where t.org_id = $1 order by t.batch_key`, [team.orgId]);
    return rows;
  }

  it("makes N templates that wait in review; a rerun reuses them and makes only the rest", async () => {
    const opts = { ...OPTS, url: `${stack.functionsUrl}`, auth: { token: await tokenFor(team.member) }, orgId: team.orgId, concurrency: 2 };
    const deps: BatchDeps = { fetch, sleep: (ms) => new Promise((r) => setTimeout(r, ms)), log: () => {} };
    const first = await runTemplateBatch({ ...opts, count: 3 }, deps);
    expect(first, JSON.stringify(first.outcomes)).toMatchObject({ made: 3, reused: 0, failed: 0, skipped: 0 });
    const made = await templates();
    expect(made.map((t) => t.batch_key)).toEqual(["pitch:0", "pitch:1", "pitch:2"]);
    expect(made.every((t) => t.status === "review" && !t.is_template && t.kind === "deck" && t.category === "pitch")).toBe(true);
    expect(new Set(made.map((t) => t.prompt_hash)).size).toBe(3);
    expect(made[1].prompt).toBe(promptFor("pitch", 1));
    const generations = (await admin.query("select count(*)::int as n from deck.generations where org_id = $1", [team.orgId])).rows[0].n;

    const second = await runTemplateBatch({ ...opts, count: 4 }, deps);
    expect(second, JSON.stringify(second.outcomes)).toMatchObject({ made: 1, reused: 3, failed: 0 });
    expect(second.outcomes.slice(0, 3).map((o) => o.generationId)).toEqual(first.outcomes.map((o) => o.generationId));
    expect((await templates()).map((t) => t.batch_key)).toEqual(["pitch:0", "pitch:1", "pitch:2", "pitch:3"]);
    expect((await admin.query("select count(*)::int as n from deck.generations where org_id = $1", [team.orgId])).rows[0].n).toBe(generations + 1);
  });
});
