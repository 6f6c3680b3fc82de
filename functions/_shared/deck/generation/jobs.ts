// The generation's worker job: deck.generate runs (or resumes) one generation (stages.ts). A run
// that throws (a database or Storage fault) is retried by pg-boss and resumes where it stopped;
// when the queue's retries are spent, the generation fails instead of waiting forever: the cards
// it finished are written into the deck and charged, the rest of the reservation is released.
import { JOBS } from "../../jobs/catalog.ts";
import { type GenerationDeps, runGeneration, writeDeck } from "./stages.ts";
import { finishGeneration, loadGeneration, noteFailedRun } from "./store.ts";

/** pg-boss runs a job once plus its retries. */
export const MAX_FAILED_RUNS = JOBS["deck.generate"].queue.retryLimit + 1;

export function generationHandlers(deps: GenerationDeps) {
  return {
    "deck.generate": async (data: unknown) => {
      const { generation_id } = JOBS["deck.generate"].payload.parse(data);
      try {
        return await runGeneration(deps, generation_id);
      } catch (err) {
        console.warn(`deck generation ${generation_id}: run failed: ${(err as Error).message}`);
        if ((await noteFailedRun(deps.db, generation_id)) < MAX_FAILED_RUNS) throw err;
        const g = await loadGeneration(deps.db, generation_id);
        if (g?.status === "pending") {
          await writeDeck(deps, g, "Generation failed").catch(() => {});
          await finishGeneration(deps.db, generation_id, "failed", {
            code: "internal_error",
            // The cause stays in the worker's log: clients read this (GET, Realtime), and a database or
            // Storage error's text is not theirs to see.
            message: `the generation failed ${MAX_FAILED_RUNS} times; finished cards are kept, unspent credits released`,
          });
        }
        return { status: "failed", error: (err as Error).message };
      }
    },
  };
}
