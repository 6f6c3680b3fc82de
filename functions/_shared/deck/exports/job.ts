// The deck module's export jobs: deck.export renders one export (PPTX, PDF or HTML) and
// stores it; deck.exports_retention removes expired files.
import type { StorageAccess } from "../../content/storage.ts";
import type { Db } from "../../db/client.ts";
import { JOBS } from "../../jobs/catalog.ts";
import { renderExport } from "./render-job.ts";
import { purgeExpiredExports } from "./retention.ts";

export interface ExportJobDeps {
  db: Db;
  storage: StorageAccess;
  /** The Chromium binary for PDFs (the worker passes PLINTH_CHROMIUM_PATH); unset: the usual Debian paths. */
  chromiumPath?: string;
}

export function exportHandlers(deps: ExportJobDeps) {
  return {
    "deck.export": async (data: unknown) => await renderExport(deps, JOBS["deck.export"].payload.parse(data).export_id),
    "deck.exports_retention": async (data: unknown) => {
      JOBS["deck.exports_retention"].payload.parse(data);
      return await purgeExpiredExports(deps);
    },
  };
}
