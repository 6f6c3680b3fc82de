// The deployments a request may use, in order, with the prices in force when it was admitted.
// private.ai_route does the choosing in SQL (model by name, or the org's route for a tier, else
// the default; enabled and fully priced only), so the api and the worker agree on it.
import { sql } from "kysely";
import type { Tx } from "../db/client.ts";
import type { Modality, ProviderKind } from "./types.ts";

export type PriceUnit =
  | "input_token"
  | "output_token"
  | "cached_input_token"
  | "reasoning_token"
  | "image"
  | "video_second"
  | "audio_second"
  | "character"
  | "call";

export interface PriceRow {
  unit: PriceUnit;
  variant: string;
  per_units: number;
  provider_cost_micros: number;
  currency: string;
  credits: number;
}

export interface Candidate {
  deployment_id: string;
  model_id: string;
  provider_id: string;
  provider_kind: ProviderKind;
  provider_model: string;
  context_window: number | null;
  max_output: number | null;
  policy_alternative: boolean;
  prices: PriceRow[];
}

/** The job's routes: the main call, plus moderation and prompt enhancement when they run. */
export interface JobRoute {
  main: Candidate[];
  moderation?: Candidate[];
  enhance?: Candidate[];
}

export type Tier = "economy" | "balanced" | "premium";

/** Reads the route as the caller (the api as the user; the worker as service). */
export async function loadRoute(
  tx: Tx,
  q: { orgId: string; modality: Modality; tier?: Tier | null; model?: string | null; at?: Date },
): Promise<Candidate[]> {
  const { rows } = await sql<Candidate>`
    select * from private.ai_route(${q.orgId}, ${q.modality}, ${q.tier ?? null}, ${q.model ?? null}, ${q.at ?? new Date()})`
    .execute(tx);
  return rows;
}

/** A module's own chain: these deployments, in this order, those that can serve the modality now. */
export async function loadRouteOf(tx: Tx, deployments: string[], modality: Modality, at = new Date()): Promise<Candidate[]> {
  const { rows } = await sql<Candidate>`select * from private.ai_route_of(${deployments}::text[], ${modality}, ${at})`.execute(tx);
  return rows;
}
