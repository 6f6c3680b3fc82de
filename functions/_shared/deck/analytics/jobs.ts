// The analytics part's worker job: deck.analytics_rollup (rollup.ts).
import type { Db } from "../../db/client.ts";
import { JOBS } from "../../jobs/catalog.ts";
import { rollupDeck, rollupDue } from "./rollup.ts";

export function analyticsHandlers(deps: { db: Db }) {
  return {
    "deck.analytics_rollup": async (data: unknown) => {
      const { document_id } = JOBS["deck.analytics_rollup"].payload.parse(data);
      return document_id ? { decks: 1, ...(await rollupDeck(deps.db, document_id)) } : await rollupDue(deps.db);
    },
  };
}
