// The content job handlers, registered in jobs/handlers.ts.
import { sql } from "kysely";
import { asService, type Db } from "../db/client.ts";
import { JOBS } from "../jobs/catalog.ts";
import type { JobHandler } from "../jobs/handlers.ts";
import type { JobSender } from "../jobs/queue.ts";
import { removeOrphans, verifyAsset } from "./assets.ts";
import { compactDocument } from "./compaction.ts";
import "./kinds/index.ts";
import { requestCompaction } from "./pump.ts";
import type { StorageAccess } from "./storage.ts";

export interface ContentJobDeps {
  db: Db;
  storage: StorageAccess;
  jobs: JobSender;
}

/** A log older than this is compacted by the sweep (the pump normally does it within seconds). */
const STALE_LOG = "10 seconds";
/** Quiet time before an automatic version (only if something changed). */
const QUIET = "30 seconds";

type ContentJob = "content.compact" | "content.sweep" | "content.verify_asset" | "content.retention";

export function contentHandlers(deps: ContentJobDeps): Record<ContentJob, JobHandler> {
  return {
    "content.compact": async (data) => {
      const { document_id } = JOBS["content.compact"].payload.parse(data);
      return await compactDocument(deps.db, document_id);
    },
    "content.sweep": async (data) => {
      JOBS["content.sweep"].payload.parse(data);
      const { stale, versions } = await asService(deps.db, async (tx) => ({
        stale: (await sql<{ id: string }>`select id from private.content_stale_logs(${STALE_LOG}::interval) id`.execute(tx)).rows,
        versions: (await sql<{ n: number }>`select private.content_auto_versions(${QUIET}::interval) as n`.execute(tx)).rows[0].n,
      }));
      for (const { id } of stale) await requestCompaction(deps.jobs, id);
      return { compactions: stale.length, auto_versions: versions };
    },
    "content.verify_asset": async (data) => {
      const { asset_id } = JOBS["content.verify_asset"].payload.parse(data);
      return await verifyAsset(deps, asset_id);
    },
    "content.retention": async (data) => {
      JOBS["content.retention"].payload.parse(data);
      const pruned = await asService(deps.db, async (tx) =>
        (await sql<{ n: number }>`select private.content_prune_versions() as n`.execute(tx)).rows[0].n);
      return { versions_pruned: pruned, ...(await removeOrphans(deps)) };
    },
  };
}
