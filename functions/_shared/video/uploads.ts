// What the upload steps share: the bucket, the row they read, and recording a rejection.
import { sql } from "kysely";
import type { Tx } from "../db/client.ts";
import type { RejectCode } from "./photo-rules.ts";

export const PHOTO_BUCKET = "photos";

export interface UploadRow {
  id: string;
  org_id: string;
  user_id: string | null;
  path: string;
  status: string;
  face_checks: number;
  face_job_id: string | null;
  deleted_at: string | null;
}

export async function rejectUpload(tx: Tx, id: string, code: RejectCode, reason: string): Promise<void> {
  await sql`update video.uploads set status = 'rejected', reject_code = ${code}, reject_reason = ${reason}, validated_at = now()
            where id = ${id}`.execute(tx);
}
