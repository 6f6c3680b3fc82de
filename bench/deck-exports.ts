// Deck exports: seconds per 20-card deck for each format, render and store, through the
// worker's own step (functions/_shared/deck/exports/render-job.ts): claim the row, read the theme
// and the pictures from Storage, render (pptxgenjs; Chromium printing the HTML; the HTML itself),
// upload to the deck-exports bucket, record it. The deck has every layout and 4 pictures.
// For the record (no target): `exportTimings` is what `npm run bench deck` prints for exports;
// `run(url)` measures it alone on a throwaway database with the Storage stand-in.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import { encodePng } from "../functions/_shared/ai/providers/local-media.ts";
import type { StorageAccess } from "../functions/_shared/content/storage.ts";
import { createDb } from "../functions/_shared/db/client.ts";
import { putObject } from "../functions/_shared/content/storage.ts";
import { renderExport } from "../functions/_shared/deck/exports/render-job.ts";
import { EXPORT_FORMATS, type ExportFormat } from "../functions/_shared/deck/exports/request.ts";
import { projectKeys } from "../scripts/lib/keys.ts";
import { startGateway } from "../scripts/platform/gateway.ts";
import { freePort } from "../tests/setup/free-port.ts";
import { summarize } from "./lib/stats.ts";
import { type BenchResult, scaleParam } from "./lib/verdict.ts";

const SECRET = "bench-jwt-secret-bench-jwt-secret-0000000000";
const ORG = "0b100000-0000-4000-8000-0000000de0b0";
const USER = "0b100000-0000-4000-9000-0000000de0b0";

export interface ExportTimings {
  cards: number;
  runs: number;
  /** Seconds per deck, render and store, per format. */
  formats: Record<ExportFormat, { p50: number; p95: number; bytes: number }>;
}

/** A deck of `n` cards cycling through every layout; every fifth card has one of the pictures. */
export function benchDeck(n: number, pictures: string[]) {
  const layouts = [
    { layout: "title", data: { title: "Quarterly business review", subtitle: "Where we are and where we go next" } },
    { layout: "bullets", data: { title: "Highlights", bullets: ["Revenue up 18% on the quarter", "Two new regions live", "Churn down to 2.1%", "Hiring on plan"] } },
    { layout: "text", data: { title: "Context", body: "The quarter opened slowly and closed strong.\n\nMost of the growth came from existing customers expanding their plans." } },
    { layout: "image", data: { title: "Usage", body: "Weekly active teams, last 12 weeks.", side: "right" } },
    { layout: "two_column", data: { title: "Plan vs actual", columns: [{ heading: "Plan", body: "120 new teams, 4 launches" }, { heading: "Actual", body: "134 new teams, 3 launches" }] } },
    { layout: "quote", data: { quote: "The export alone saved our team a day a week.", attribution: "A customer" } },
    { layout: "stats", data: { title: "In numbers", stats: [{ value: "134", label: "new teams" }, { value: "98.9%", label: "uptime" }, { value: "4.8", label: "rating" }] } },
    { layout: "timeline", data: { title: "Next quarter", steps: [{ label: "Jan", body: "Beta of the new editor" }, { label: "Feb", body: "Enterprise SSO" }, { label: "Mar", body: "General availability" }] } },
    { layout: "closing", data: { title: "Questions?", body: "Thank you." } },
  ];
  return {
    theme_id: "midnight",
    dimensions: "16x9",
    cards: Array.from({ length: n }, (_, i) => ({
      id: `card-${i + 1}`,
      ...layouts[i % layouts.length],
      image: i % 5 === 3 && pictures.length ? { asset_id: pictures[(i / 5) % pictures.length | 0], alt: `Picture ${i}` } : null,
      notes: `Speaker notes for card ${i + 1}.`,
    })),
  };
}

/**
 * Renders and stores a `cards`-card deck `runs` times per format, on a database with the
 * migrations and a Storage that speaks the Storage API (the stack's, or the stand-in). Makes its
 * own org, deck and pictures.
 */
export async function exportTimings(opts: { dbUrl: string; storage: StorageAccess; cards?: number; runs?: number; chromiumPath?: string }): Promise<ExportTimings> {
  const cards = opts.cards ?? 20;
  const runs = opts.runs ?? 5;
  const c = new pg.Client({ connectionString: opts.dbUrl });
  await c.connect();
  const { db, pool } = createDb(opts.dbUrl, 2);
  try {
    await c.query(`insert into auth.users (instance_id, id, aud, role, email, encrypted_password, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
                   values ('00000000-0000-0000-0000-000000000000', $1, 'authenticated', 'authenticated', 'bench@deck-exports.test', '', '{}', '{}', now(), now())
                   on conflict (id) do nothing`, [USER]);
    await c.query(`insert into public.orgs (id, slug, name, kind, created_by) values ($1, 'bench-deck-exports', 'Bench deck exports', 'team', $2)
                   on conflict (id) do nothing`, [ORG, USER]);
    const { rows: [doc] } = await c.query<{ id: string }>(
      `insert into content.documents (org_id, kind, title, body) values ($1, 'deck', 'Bench deck', '{}') returning id`, [ORG]);
    const pictures: string[] = [];
    for (let i = 0; i < 4; i++) {
      const png = encodePng(640, 360, [40 + i * 40, 90, 160], [230, 230, 240]);
      const objectPath = `${ORG}/${doc.id}/bench-${i}.png`;
      await putObject(opts.storage, "content-assets", objectPath, png, "image/png");
      const { rows: [a] } = await c.query<{ id: string }>(
        `insert into content.assets (org_id, document_id, object_path, filename, status) values ($1, $2, $3, 'bench.png', 'uploaded') returning id`,
        [ORG, doc.id, objectPath]);
      pictures.push(a.id);
    }
    const body = benchDeck(cards, pictures);
    await c.query(`update content.documents set body = $2 where id = $1`, [doc.id, body]);

    const formats = {} as ExportTimings["formats"];
    for (const format of EXPORT_FORMATS) {
      const seconds: number[] = [];
      let bytes = 0;
      for (let run = 0; run < runs + 1; run++) {
        // Each run its own revision, so each is a new export with its own snapshot.
        const { rows: [e] } = await c.query<{ id: string }>(
          `with d as (update content.documents set revision = revision + 1 where id = $1 returning org_id, id, revision, title, body)
           insert into deck.exports (org_id, document_id, revision, format, title, body, requested_by)
           select org_id, id, revision, $2, title, body, $3 from d returning id`, [doc.id, format, USER]);
        const t0 = performance.now();
        const out = await renderExport({ db, storage: opts.storage, chromiumPath: opts.chromiumPath }, e.id);
        const elapsed = (performance.now() - t0) / 1000;
        if (out.status !== "stored") throw new Error(`${format} export did not store: ${JSON.stringify(out)}`);
        // The first run of each format warms up (module load, Chromium's first start).
        if (run > 0) seconds.push(elapsed);
        bytes = Number(out.bytes);
      }
      const s = summarize(seconds);
      formats[format] = { p50: s.p50, p95: s.p95, bytes };
    }
    return { cards, runs, formats };
  } finally {
    await c.end();
    await pool.end();
  }
}

export function timingLines(t: ExportTimings): string[] {
  return EXPORT_FORMATS.map((f) =>
    `  ${f.padEnd(4)} ${t.cards}-card deck, render + store: p50 ${t.formats[f].p50.toFixed(3)} s, p95 ${t.formats[f].p95.toFixed(3)} s (${(t.formats[f].bytes / 1024).toFixed(0)} KiB, ${t.runs} runs)`);
}

/** On its own: a throwaway database (from scripts/bench.ts) and the Storage stand-in. */
export async function run(url: string): Promise<BenchResult> {
  const runs = scaleParam("runs per format", "BENCH_DECK_EXPORT_RUNS", 5);
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "plinth-deck-exports-bench-"));
  const gateway = await startGateway({ port: await freePort(), dbUrl: url, jwtSecret: SECRET, dataDir, functionsUpstream: "http://127.0.0.1:1", log: () => {} });
  try {
    const { serviceRoleKey } = await projectKeys(SECRET);
    const t = await exportTimings({ dbUrl: url, storage: { url: gateway.url, serviceRoleKey }, runs: runs.value });
    console.log("\ndeck exports: seconds per 20-card deck (every layout, 4 pictures), render + store, through the worker's step");
    for (const l of timingLines(t)) console.log(l);
    return { name: "deck-exports", scale: [runs], gates: [], failures: [] };
  } finally {
    await gateway.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

// `npx tsx bench/deck-exports.ts`: the measurement alone on a throwaway database.
if (import.meta.url === `file://${process.argv[1]}`) {
  const { benchDatabase } = await import("./lib/database.ts");
  const database = await benchDatabase();
  try {
    await run(database.url);
  } finally {
    await database.stop();
  }
}
