// Outbox consumer "content-assets": an upload into content-assets (storage.object_created) that
// matches a reserved asset marks it uploaded and queues its verification, in the dispatcher's
// transaction: the mark, the job and the consumer receipt commit together.
import { sql } from "kysely";
import type { EventConsumer } from "../events/dispatcher.ts";
import { enqueue, type JobSender } from "../jobs/queue.ts";
import { ASSET_BUCKET } from "./storage.ts";

export function createContentAssetsConsumer(jobs: JobSender): EventConsumer {
  return {
    name: "content-assets",
    async handle(tx, event) {
      if (event.type !== "storage.object_created" || event.payload.bucket_id !== ASSET_BUCKET) return;
      const { rows } = await sql<{ id: string | null }>`
        select private.content_asset_uploaded(${ASSET_BUCKET}, ${String(event.payload.name)}) as id`.execute(tx);
      const id = rows[0]?.id;
      if (id) await enqueue(jobs, tx, "content.verify_asset", { asset_id: id }, { singletonKey: id });
    },
  };
}
