// The generation's worker job: deck.generate runs (or resumes) one generation (stages.ts).
import { JOBS } from "../../jobs/catalog.ts";
import { type GenerationDeps, runGeneration } from "./stages.ts";

export function generationHandlers(deps: GenerationDeps) {
  return {
    "deck.generate": async (data: unknown) => {
      const { generation_id } = JOBS["deck.generate"].payload.parse(data);
      return await runGeneration(deps, generation_id);
    },
  };
}
