// npm run deck:templates -- --count N --category <key> [--org <id>] [--locale en] [--tier basic]
//                           [--cards 8] [--no-images] [--concurrency 2] [--url <functions url>]
//
// Generates N deck templates through the generation API (POST /api/deck/generations with
// saveAsTemplate), each waiting in review afterwards (publish or reject them with
// POST /api/deck/templates/{id}/review or deck.review_template).
//
// Authentication: an org API key in PLINTH_API_KEY (scopes ai.use and content.write; the
// templates go to the key's org), or a user's access token in PLINTH_TOKEN (locally:
// `PLINTH_TOKEN=$(npm run -s token -- alice@acme.test)`) with --org naming the org.
// The functions URL is --url, else PLINTH_FUNCTIONS_URL, else the running `npm start` stack's.
//
// Each template i has the batch key "<category>:<i>" and its own prompt (a topic of the category
// with an audience and an angle, so no two prompts are the same). A rerun resumes: the API
// answers a batch key it already has with its generation (200), which is then only waited for,
// never generated again. 429 waits for Retry-After (bounded retries); 5xx and network errors are
// retried with backoff; 402 (credits) stops the batch. Prints a summary: made, reused, failed.
import { parseArgs } from "node:util";
import { pathToFileURL } from "node:url";

export const TOPICS: Record<string, string[]> = {
  pitch: ["a seed round for a B2B analytics startup", "a climate-tech hardware company", "a consumer fintech app", "a developer tools company", "a healthcare scheduling platform", "a marketplace for local services", "an AI tutoring product", "a logistics software company"],
  sales: ["a proposal for an enterprise security suite", "a customer case study in retail", "a product tour of a CRM", "a renewal pitch to a key account", "a pricing and packaging overview", "a partner channel program"],
  marketing: ["a product launch campaign", "a brand story refresh", "a quarterly content plan", "a social media strategy", "an event marketing plan", "a customer referral program"],
  report: ["a quarterly business review", "a board update", "a user research readout", "an annual impact report", "a post-incident review", "a market analysis"],
  education: ["an introduction to statistics", "a workshop on public speaking", "onboarding for new engineers", "a lesson on the water cycle", "a course on personal finance", "a training on data privacy"],
  product: ["a product roadmap for next year", "a feature specification", "release notes for a major version", "a product vision", "a design review", "an experiment results summary"],
  event: ["a conference keynote", "a meetup talk on open source", "a team offsite agenda", "a webinar on industry trends", "an award ceremony", "a hackathon kickoff"],
  personal: ["a designer's portfolio", "an about-me introduction", "a wedding celebration", "a travel journal", "a personal year in review", "a job application presentation"],
};
const GENERIC = ["a strategy overview", "a team introduction", "a project kickoff", "a progress update", "a proposal", "a retrospective"];
const AUDIENCES = ["investors", "customers", "the team", "executives", "partners", "newcomers"];
const ANGLES = ["concise and visual", "data-driven", "story-led", "practical step by step"];

/** Template i's prompt: deterministic (a rerun asks for the same one) and distinct from every other i's. */
export function promptFor(category: string, i: number): string {
  const topics = TOPICS[category] ?? GENERIC.map((t) => `${t} for ${category.replace(/[_-]/g, " ")}`);
  const t = topics[i % topics.length];
  const rest = Math.floor(i / topics.length);
  const audience = AUDIENCES[rest % AUDIENCES.length];
  const angle = ANGLES[Math.floor(rest / AUDIENCES.length) % ANGLES.length];
  const round = Math.floor(rest / (AUDIENCES.length * ANGLES.length));
  return `A ${category} presentation template: ${t}, for ${audience}, ${angle}${round ? ` (variation ${round + 1})` : ""}. ` +
    "Use placeholders where the user's own facts go.";
}

export interface BatchOptions {
  count: number;
  category: string;
  orgId?: string;
  locale: string;
  tier: "basic" | "advanced" | "premium";
  cards: number;
  images: boolean;
  concurrency: number;
  /** The functions URL (…/functions/v1), without a trailing slash. */
  url: string;
  auth: { token: string } | { apiKey: string };
  /** Waits between polls of a generation. */
  pollMs?: number;
  /** Longest wait for one generation. */
  timeoutMs?: number;
  /** Retries of one request on 429, 5xx or a network error. */
  maxRetries?: number;
}

export interface BatchDeps {
  fetch: typeof fetch;
  sleep: (ms: number) => Promise<void>;
  log: (line: string) => void;
}

export type Outcome = { i: number; batchKey: string; generationId?: string; deckId?: string | null; result: "made" | "reused" | "failed" | "skipped"; error?: string };
export interface Summary {
  made: number;
  reused: number;
  failed: number;
  skipped: number;
  stopped?: string;
  outcomes: Outcome[];
}

class Stop extends Error {}

/** Seconds or an HTTP date, as Retry-After carries them; null when absent or unreadable. */
export function retryAfterMs(header: string | null, now = Date.now()): number | null {
  if (!header) return null;
  const s = Number(header);
  if (Number.isFinite(s) && s >= 0) return Math.ceil(s * 1000);
  const at = Date.parse(header);
  return Number.isNaN(at) ? null : Math.max(0, at - now);
}

async function request(o: BatchOptions, d: BatchDeps, method: string, path: string, body?: unknown) {
  const headers: Record<string, string> = { accept: "application/json" };
  if ("token" in o.auth) headers.authorization = `Bearer ${o.auth.token}`;
  else headers["x-api-key"] = o.auth.apiKey;
  if (body !== undefined) headers["content-type"] = "application/json";
  const max = o.maxRetries ?? 8;
  for (let attempt = 0; ; attempt++) {
    let res: Response | undefined;
    let failure = "";
    try {
      res = await d.fetch(`${o.url}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (err) {
      failure = (err as Error).message;
    }
    if (res && res.status !== 429 && res.status < 500) {
      const text = await res.text();
      let json: any = undefined;
      try {
        json = text ? JSON.parse(text) : undefined;
      } catch { /* not JSON */ }
      return { status: res.status, body: json, raw: text };
    }
    if (attempt >= max) {
      throw new Error(res ? `${method} ${path}: ${res.status} after ${attempt + 1} tries` : `${method} ${path}: ${failure} after ${attempt + 1} tries`);
    }
    // Rate limited: as long as the server says; otherwise (and for 5xx, network) back off.
    const backoff = Math.min(30_000, 500 * 2 ** attempt);
    const wait = res?.status === 429 ? retryAfterMs(res.headers.get("retry-after")) ?? backoff : backoff;
    if (res) await res.body?.cancel().catch(() => undefined);
    d.log(`  ${method} ${path}: ${res ? res.status : failure}; retrying in ${Math.round(wait / 100) / 10} s`);
    await d.sleep(wait);
  }
}

async function one(o: BatchOptions, d: BatchDeps, i: number): Promise<Outcome> {
  const batchKey = `${o.category}:${i}`;
  const res = await request(o, d, "POST", "/api/deck/generations", {
    inputText: promptFor(o.category, i),
    numCards: o.cards,
    ...(o.orgId ? { orgId: o.orgId } : {}),
    textOptions: { amount: "medium", language: o.locale.split("-")[0] },
    imageOptions: o.images ? { source: "aiGenerated", tier: o.tier } : { source: "noImages", tier: o.tier },
    saveAsTemplate: { category: o.category, locale: o.locale, batchKey },
  });
  const message = res.body?.error?.message ?? res.raw.slice(0, 300);
  if (res.status === 402) throw new Stop(`out of credits at ${batchKey}: ${message}`);
  if (res.status === 401 || res.status === 403) throw new Stop(`not allowed: ${message}`);
  if (res.status === 400) throw new Stop(`refused: ${message}`);
  // The same prompt already has a template in this category (made by another batch).
  if (res.status === 409) return { i, batchKey, result: "skipped", error: message };
  if (res.status !== 200 && res.status !== 202) return { i, batchKey, result: "failed", error: `${res.status}: ${message}` };
  const generationId = res.body.generationId as string;
  const reused = res.status === 200;
  const deadline = Date.now() + (o.timeoutMs ?? 15 * 60_000);
  for (;;) {
    const g = await request(o, d, "GET", `/api/deck/generations/${generationId}`);
    if (g.status !== 200) return { i, batchKey, generationId, result: "failed", error: `GET ${g.status}: ${g.body?.error?.message ?? g.raw.slice(0, 200)}` };
    if (g.body.status === "completed") return { i, batchKey, generationId, deckId: g.body.deckId, result: reused ? "reused" : "made" };
    if (g.body.status !== "pending") {
      return { i, batchKey, generationId, deckId: g.body.deckId, result: "failed", error: `${g.body.status}: ${g.body.error?.message ?? "no reason given"}` };
    }
    if (Date.now() > deadline) return { i, batchKey, generationId, result: "failed", error: "still pending at the timeout; rerun to pick it up" };
    await d.sleep(o.pollMs ?? 2000);
  }
}

export async function runTemplateBatch(o: BatchOptions, d: BatchDeps): Promise<Summary> {
  const outcomes: Outcome[] = [];
  let next = 0;
  let stopped: string | undefined;
  const worker = async () => {
    while (!stopped && next < o.count) {
      const i = next++;
      try {
        const out = await one(o, d, i);
        outcomes.push(out);
        d.log(`${out.batchKey}: ${out.result}${out.generationId ? ` (generation ${out.generationId}${out.deckId ? `, deck ${out.deckId}` : ""})` : ""}${out.error ? `: ${out.error}` : ""}`);
      } catch (err) {
        if (err instanceof Stop) stopped ??= err.message;
        else outcomes.push({ i, batchKey: `${o.category}:${i}`, result: "failed", error: (err as Error).message });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(o.concurrency, o.count)) }, worker));
  outcomes.sort((a, b) => a.i - b.i);
  const n = (r: Outcome["result"]) => outcomes.filter((x) => x.result === r).length;
  return { made: n("made"), reused: n("reused"), failed: n("failed"), skipped: n("skipped"), ...(stopped ? { stopped } : {}), outcomes };
}

async function main() {
  const { values } = parseArgs({
    options: {
      count: { type: "string" }, category: { type: "string" }, org: { type: "string" }, locale: { type: "string", default: "en" },
      tier: { type: "string", default: "basic" }, cards: { type: "string", default: "8" }, "no-images": { type: "boolean", default: false },
      concurrency: { type: "string", default: "2" }, url: { type: "string" }, "timeout-s": { type: "string", default: "900" },
    },
  });
  const usage = "usage: npm run deck:templates -- --count N --category <key> [--org <id>] [--locale en] [--tier basic|advanced|premium] [--cards 8] [--no-images] [--concurrency 2] [--url <functions url>]";
  const count = Number(values.count);
  const cards = Number(values.cards);
  const concurrency = Number(values.concurrency);
  const fail = (msg: string) => {
    console.error(`${msg}\n${usage}`);
    process.exit(2);
  };
  if (!Number.isInteger(count) || count < 1 || count > 10_000) fail("--count must be a whole number from 1 to 10000");
  if (!values.category || !/^[a-z][a-z0-9_-]{1,59}$/.test(values.category)) fail("--category must be a category key such as pitch");
  if (!["basic", "advanced", "premium"].includes(values.tier!)) fail("--tier is basic, advanced or premium");
  if (!Number.isInteger(cards) || cards < 1 || cards > 60) fail("--cards must be from 1 to 60");
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 16) fail("--concurrency must be from 1 to 16");
  if (values.org && !/^[0-9a-f-]{36}$/i.test(values.org)) fail("--org must be an org id");
  const apiKey = process.env.PLINTH_API_KEY;
  const token = process.env.PLINTH_TOKEN;
  if (!apiKey && !token) fail("set PLINTH_API_KEY (an org API key) or PLINTH_TOKEN (a user's access token, with --org)");
  let url = values.url ?? process.env.PLINTH_FUNCTIONS_URL;
  if (!url) {
    const { stackConfig } = await import("./lib/env.ts");
    const { runningStack } = await import("./lib/lock.ts");
    url = runningStack(stackConfig().dataDir)?.functionsUrl;
  }
  if (!url) fail("no functions URL: pass --url or PLINTH_FUNCTIONS_URL, or run npm start");
  const summary = await runTemplateBatch({
    count, category: values.category!, orgId: values.org, locale: values.locale!, tier: values.tier as BatchOptions["tier"], cards,
    images: !values["no-images"], concurrency, url: url!.replace(/\/+$/, ""), auth: apiKey ? { apiKey } : { token: token! },
    timeoutMs: Number(values["timeout-s"]) * 1000,
  }, { fetch, sleep: (ms) => new Promise((r) => setTimeout(r, ms)), log: (l) => console.log(l) });
  console.log(`\nmade ${summary.made}, reused ${summary.reused}, failed ${summary.failed}, skipped ${summary.skipped} (same prompt already a template)`);
  if (summary.stopped) console.log(`stopped: ${summary.stopped}`);
  process.exit(summary.failed > 0 || summary.stopped ? 1 : 0);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) await main();
