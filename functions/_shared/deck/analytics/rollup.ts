// The rollup job (deck.analytics_rollup): per card and revision, and per revision, from the
// views and their card events, bots left out. Each deck is recomputed whole by one SQL function
// (private.deck_rollup_document: set-based, percentile_cont, replaces the deck's rollup rows in
// its own transaction), so a run is idempotent and a failed deck leaves its previous rollups.
// With a document_id it does that deck (on demand); without (cron, every 5 minutes) it does the
// decks seen since their last rollup, one transaction each.
import { sql } from "kysely";
import { asService, type Db } from "../../db/client.ts";

export interface RollupResult {
  decks: number;
  failed: number;
  /** Due decks not reached within the time budget (the next run takes them). */
  left: number;
}

export async function rollupDeck(db: Db, documentId: string): Promise<{ revisions: number; cards: number }> {
  return await asService(db, async (tx) =>
    (await sql<{ r: { revisions: number; cards: number } }>`select private.deck_rollup_document(${documentId}::uuid) as r`.execute(tx)).rows[0].r);
}

/**
 * The decks due, oldest activity first, until `budgetMs` is spent (well inside the job's 10-minute
 * expiry, and before the next 5-minute run): what is left stays due for the next run.
 */
export async function rollupDue(db: Db, opts: { limit?: number; budgetMs?: number; now?: () => number } = {}): Promise<RollupResult> {
  const now = opts.now ?? (() => performance.now());
  const deadline = now() + (opts.budgetMs ?? 240_000);
  const due = await asService(db, async (tx) =>
    (await sql<{ id: string }>`select id from private.deck_rollup_due(${opts.limit ?? 500}::int) as id`.execute(tx)).rows.map((r) => r.id));
  let failed = 0;
  let done = 0;
  for (const id of due) {
    if (now() > deadline) break;
    done++;
    try {
      await rollupDeck(db, id);
    } catch (err) {
      // One deck's failure (deleted meanwhile, say) must not stop the others; the next run retries it.
      failed++;
      console.warn(JSON.stringify({ msg: "deck rollup failed", document_id: id, error: (err as Error).message }));
    }
  }
  return { decks: done - failed, failed, left: due.length - done };
}
