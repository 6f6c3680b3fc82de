// The deck module's worker jobs, one map per part (generation, exports, analytics, AI card
// operations), merged here. Importing this registers the deck document kind in the worker, so
// the content engine's compaction can read decks.
import type { AiWorkerDeps } from "../ai/failure.ts";
import type { StorageAccess } from "../content/storage.ts";
import type { Db } from "../db/client.ts";
import type { JobSender } from "../jobs/queue.ts";
import "./kind.ts";
import { operationHandlers } from "./operations/jobs.ts";
import { exportHandlers } from "./exports/job.ts";
import { analyticsHandlers } from "./analytics/jobs.ts";
import { generationHandlers } from "./generation/jobs.ts";

export interface DeckJobDeps {
  db: Db;
  storage: StorageAccess;
  jobs: JobSender;
  /** The AI gateway's worker side: the pipeline admits and runs its calls through it. */
  ai: Omit<AiWorkerDeps, "db">;
  /** The Chromium binary for PDF exports (PLINTH_CHROMIUM_PATH); unset: the usual Debian paths. */
  chromiumPath?: string;
}

export function deckHandlers(deps: DeckJobDeps) {
  return {
    ...exportHandlers(deps),
    ...analyticsHandlers(deps),
    ...operationHandlers(deps),
    ...generationHandlers(deps),
  };
}
