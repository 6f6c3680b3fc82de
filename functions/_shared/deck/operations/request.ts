// Requesting an AI card operation, in the api's transaction as the caller: the same
// Idempotency-Key with the same request returns the first operation (another request under it
// is refused); the deck must be at the revision the client read; the card must be in it. The AI
// job is admitted through the gateway with its own text pricing (it reserves and settles by
// itself; 402 and 429 pass through), and the operation and its worker job commit with it.
import { sql } from "kysely";
import { admitJob, type Submitter } from "../../ai/submit.ts";
import { readCurrent, staleError } from "../../content/documents.ts";
import type { Tx } from "../../db/client.ts";
import { ApiError } from "../../http/errors.ts";
import { enqueue, type JobSender } from "../../jobs/queue.ts";
import type { DeckBody } from "../kind.ts";
import { aiInput, cardHash, hashOf, type Op, type OpParams } from "./card.ts";
import { loadOperation, type Operation } from "./store.ts";

export interface OperationRequest {
  documentId: string;
  cardId: string;
  op: Op;
  baseRevision: number;
  params: OpParams;
  idempotencyKey?: string;
}

export async function requestOperation(
  tx: Tx,
  jobs: JobSender,
  who: Submitter & { userId: string },
  req: OperationRequest,
): Promise<{ operation: Operation; created: boolean }> {
  const { rows: [access] } = await sql<{ a: { level: string } }>`select content.my_access(${req.documentId}::uuid) as a`.execute(tx);
  if (access.a.level === "none") throw new ApiError(404, "not_found", "deck not found");
  if (access.a.level !== "edit") throw new ApiError(403, "forbidden", "you need edit access to this deck to change its cards");

  const requestHash = await hashOf({ actor: who.userId, card_id: req.cardId, op: req.op, base_revision: req.baseRevision, params: req.params });
  if (req.idempotencyKey) {
    await sql`select pg_advisory_xact_lock(hashtextextended(${`deck.op:${req.documentId}:${req.idempotencyKey}`}, 0))`.execute(tx);
    const { rows: [prior] } = await sql<{ id: string; request_hash: string }>`
      select id, request_hash from deck.operations
      where document_id = ${req.documentId}::uuid and idempotency_key = ${req.idempotencyKey}`.execute(tx);
    if (prior) {
      if (prior.request_hash !== requestHash) {
        throw new ApiError(422, "idempotency_key_reused", "this Idempotency-Key was used for another request on this deck; send a fresh key");
      }
      return { operation: (await loadOperation(tx, prior.id))!, created: false };
    }
  }

  const cur = await readCurrent(tx, req.documentId);
  if (cur.row.kind !== "deck") throw new ApiError(404, "not_found", "deck not found");
  if (cur.revision !== req.baseRevision) throw staleError(cur);
  const card = (cur.body as DeckBody).cards.find((c) => c.id === req.cardId);
  if (!card) throw new ApiError(404, "card_not_found", `the deck has no card "${req.cardId}" at revision ${cur.revision}`);

  // No gateway key: the operation is the idempotent unit (above), and it has exactly one AI job.
  const { job } = await admitJob(tx, null, who, { modality: "text", tier: req.params.tier, source: "deck", input: aiInput(card, req.op, req.params) });
  const { rows: [operation] } = await sql<Operation>`
    select * from private.deck_create_operation(${req.documentId}::uuid, ${req.cardId}, ${req.op}, ${JSON.stringify(req.params)}::jsonb,
      ${cur.revision}::int, ${await cardHash(card)}, ${JSON.stringify(card)}::jsonb, ${req.idempotencyKey ?? null}, ${requestHash}, ${job.id}::uuid)`.execute(tx);
  await enqueue(jobs, tx, "deck.card_op", { operation_id: operation.id }, { singletonKey: operation.id });
  return { operation, created: true };
}
