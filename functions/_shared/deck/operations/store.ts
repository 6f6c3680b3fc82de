// The deck.operations row as the api and worker read it.
import { sql } from "kysely";
import type { Tx } from "../../db/client.ts";
import type { Card } from "../kind.ts";
import type { Op } from "./card.ts";

export interface Operation {
  id: string;
  org_id: string;
  document_id: string;
  card_id: string;
  op: Op;
  params: Record<string, unknown>;
  base_revision: number;
  card_hash: string;
  base_card: Card;
  idempotency_key: string | null;
  request_hash: string;
  state: "queued" | "running" | "applied" | "conflict" | "failed" | "discarded" | "canceled";
  ai_job_id: string | null;
  result: Card | null;
  resulting_revision: number | null;
  actor_id: string | null;
  actor_source: "ai" | "manual";
  resolved_by: string | null;
  error: { code: string; message: string } | null;
  created_at: string;
  updated_at: string;
  finished_at: string | null;
}

export const OPEN_STATES = new Set(["queued", "running"]);

export async function loadOperation(tx: Tx, id: string, opts: { lock?: boolean } = {}): Promise<Operation | undefined> {
  const q = opts.lock
    ? sql<Operation>`select * from deck.operations where id = ${id}::uuid for update`
    : sql<Operation>`select * from deck.operations where id = ${id}::uuid`;
  return (await q.execute(tx)).rows[0];
}
