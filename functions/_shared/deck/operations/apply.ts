// Applying an AI card operation's result. Transactions: the worker's settle is one transaction
// that locks the operation, then the document (readCurrent with lock: the order every path
// takes), and no lock is held across the AI call (runOperation runs it before). If the card still
// hashes to what the operation read, the proposal replaces it on the CURRENT body (concurrent
// edits of other cards stay) through the content engine's writeBody with reason ai_rewrite,
// which keeps a version of the deck first; a live deck gets a Yjs update of just that card. If a
// human changed (or removed) the card meanwhile, nothing is written: the operation is a
// conflict holding its proposal, applied later by hand (applyConflict) or discarded.
import { sql } from "kysely";
import { readCurrent, staleError, writeBody } from "../../content/documents.ts";
import type { Tx } from "../../db/client.ts";
import { ApiError } from "../../http/errors.ts";
import type { Card, DeckBody } from "../kind.ts";
import { cardHash, parseProposal, replaceCard } from "./card.ts";
import { loadOperation, OPEN_STATES, type Operation } from "./store.ts";

interface AiJobEnd {
  status: "queued" | "running" | "succeeded" | "failed" | "canceled";
  output: { text?: string } | null;
  error: { code?: string; message?: string } | null;
}

async function end(tx: Tx, id: string, state: "failed" | "conflict" | "applied", set: { result?: Card; revision?: number; error?: { code: string; message: string } }) {
  await sql`update deck.operations
            set state = ${state}, result = coalesce(${set.result ? JSON.stringify(set.result) : null}::jsonb, result),
                resulting_revision = ${set.revision ?? null}::int, error = ${set.error ? JSON.stringify(set.error) : null}::jsonb,
                finished_at = now()
            where id = ${id}::uuid`.execute(tx);
  return state;
}

/**
 * Settles an open operation whose AI job has ended (as the worker, in its transaction). Returns
 * the operation's state, "waiting" while its AI job runs, or why it did nothing.
 */
export async function settleOperation(tx: Tx, operationId: string): Promise<string> {
  const op = await loadOperation(tx, operationId, { lock: true });
  if (!op) return "gone";
  if (!OPEN_STATES.has(op.state)) return op.state;
  const { rows: [job] } = await sql<AiJobEnd>`select status, output, error from ai.jobs where id = ${op.ai_job_id}::uuid`.execute(tx);
  if (!job) return await end(tx, op.id, "failed", { error: { code: "ai_job_missing", message: "the operation's AI job is gone" } });
  if (job.status === "queued" || job.status === "running") return "waiting";
  if (job.status !== "succeeded") {
    return await end(tx, op.id, "failed", {
      error: { code: job.error?.code ?? job.status, message: job.error?.message ?? `the AI job was ${job.status}; the deck did not change` },
    });
  }
  const proposal = parseProposal(op.base_card, String(job.output?.text ?? ""));
  if (!proposal.ok) return await end(tx, op.id, "failed", { error: { code: "invalid_output", message: proposal.message } });

  const cur = await readCurrent(tx, op.document_id, { lock: true });
  const body = cur.body as DeckBody;
  const card = body.cards.find((c) => c.id === op.card_id);
  if (!card || (await cardHash(card)) !== op.card_hash) {
    return await end(tx, op.id, "conflict", {
      result: proposal.card,
      error: card
        ? { code: "card_changed", message: "the card changed while the AI worked; apply the proposal or discard it" }
        : { code: "card_removed", message: "the card was removed while the AI worked" },
    });
  }
  await sql`savepoint deck_op_apply`.execute(tx);
  try {
    const w = await writeBody(tx, op.document_id, { base_revision: cur.revision, body: replaceCard(body, proposal.card)!, reason: "ai_rewrite" });
    return await end(tx, op.id, "applied", { result: proposal.card, revision: w.revision });
  } catch (err) {
    if (!(err instanceof ApiError) || err.status >= 500) throw err;
    await sql`rollback to savepoint deck_op_apply`.execute(tx);
    return await end(tx, op.id, "failed", { result: proposal.card, error: { code: err.code, message: err.message } });
  }
}

/**
 * Applies a conflict's proposal by hand, as the caller (an editor of the deck), onto the deck at
 * `baseRevision` (the revision they are looking at; else 409 with the current one). The card
 * keeps its current image and notes; its data (and layout, if the proposal's differs) become the
 * proposal's. A version of the deck is kept first (reason ai_rewrite).
 */
export async function applyConflict(tx: Tx, operationId: string, baseRevision: number): Promise<Operation> {
  const { rows: [locked] } = await sql<Operation>`select * from private.deck_operation_for_editor(${operationId}::uuid)`.execute(tx);
  if (locked.state !== "conflict") throw new ApiError(409, "not_in_conflict", `only an operation in conflict is applied by hand (this one is ${locked.state})`);
  const cur = await readCurrent(tx, locked.document_id, { lock: true });
  if (cur.revision !== baseRevision) throw staleError(cur);
  const body = cur.body as DeckBody;
  const card = body.cards.find((c) => c.id === locked.card_id);
  if (!card) throw new ApiError(409, "card_removed", `the deck has no card "${locked.card_id}" any more; discard the proposal`);
  const proposal = locked.result!;
  const next = { ...card, layout: proposal.layout, data: proposal.data } as Card;
  const w = await writeBody(tx, locked.document_id, { base_revision: cur.revision, body: replaceCard(body, next)!, reason: "ai_rewrite" });
  const { rows: [done] } = await sql<Operation>`select * from private.deck_resolve_operation(${operationId}::uuid, ${w.revision}::int)`.execute(tx);
  return done;
}
