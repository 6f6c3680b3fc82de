// deck.export's work (filled in next).
import type { ExportJobDeps } from "./job.ts";

export async function renderExport(_deps: ExportJobDeps, _exportId: string): Promise<Record<string, unknown>> {
  throw new Error("deck exports are not implemented yet");
}
