// Outbox consumer "video", in the dispatcher's transaction (its effects and its receipt commit
// together): a file arriving in the photos bucket becomes an upload to validate; the outcome of
// an upload's face check (ai.job_succeeded / ai.job_failed of a vision job from this module)
// becomes its verdict, unless the validation job that ran it gave it first (face-check.ts).
import { sql } from "kysely";
import type { EventConsumer } from "../events/dispatcher.ts";
import { enqueue, type JobSender } from "../jobs/queue.ts";
import { applyFaceCheck } from "./face-check.ts";
import { PHOTO_BUCKET } from "./uploads.ts";

export function createVideoConsumer(jobs: JobSender): EventConsumer {
  return {
    name: "video",
    async handle(tx, event) {
      const p = event.payload as Record<string, unknown>;
      if ((event.type === "storage.object_created" || event.type === "storage.object_updated") && p.bucket_id === PHOTO_BUCKET) {
        const { rows } = await sql<{ id: string | null }>`
          select private.video_upload_arrived(${String(p.name)}, ${(p.owner_id as string | null) ?? null}::uuid) as id`.execute(tx);
        const id = rows[0]?.id;
        if (id) await enqueue(jobs, tx, "video.validate_upload", { upload_id: id }, { singletonKey: id });
        return;
      }
      if ((event.type === "ai.job_succeeded" || event.type === "ai.job_failed") && p.source === "video" && p.modality === "vision") {
        await applyFaceCheck(tx, jobs, String(p.job_id));
      }
    },
  };
}
