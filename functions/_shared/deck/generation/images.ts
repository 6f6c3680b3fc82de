// A generated image becomes one of the deck's content assets, like an upload: the content engine
// reserves the asset (content-assets/<org>/<deck>/<asset>.<ext>, counted against the plan's
// storage), Storage copies the gateway's output (bucket ai-outputs) to that path, and the content
// engine's own verification (verifyAsset: sniff the real bytes, record size, sha256 and
// dimensions) marks it verified. The card then points at it ({ asset_id, alt }); exports read it
// from there. No transaction is open while Storage works. A retried run reuses the asset an
// earlier run stored (found by its name); one the card cannot take any more (canceled meanwhile)
// is discarded by the caller.
import { sql } from "kysely";
import { type AssetRow, verifyAsset } from "../../content/assets.ts";
import { ASSET_BUCKET, copyObject, type StorageAccess } from "../../content/storage.ts";
import { asService, type Db } from "../../db/client.ts";

export interface OutputFile {
  bucket: string;
  path: string;
  mime_type: string;
  bytes: number;
}

/** Stores the image as an asset of the deck: its id, or why its bytes were refused. */
export async function imageToAsset(
  deps: { db: Db; storage: StorageAccess },
  documentId: string,
  file: OutputFile,
  name: string,
): Promise<{ assetId: string } | { refused: string }> {
  // A run that died after storing this very picture (before recording it on its card) finds it
  // again by its name, which is the generation's and the card's: no second copy counts against
  // the plan's storage.
  const { rows: [again] } = await asService(deps.db, (tx) =>
    sql<{ id: string }>`select id from content.assets where document_id = ${documentId}::uuid and filename = ${name} and status = 'verified'
                        order by created_at limit 1`.execute(tx));
  if (again) return { assetId: again.id };
  const asset = await asService(deps.db, async (tx) =>
    (await sql<AssetRow>`select * from private.content_reserve_asset(${documentId}::uuid, ${name}, ${file.mime_type}, ${file.bytes}::bigint)`
      .execute(tx)).rows[0]);
  await copyObject(deps.storage, file.bucket, file.path, asset.object_path, ASSET_BUCKET);
  const verdict = await verifyAsset(deps, asset.id);
  if ("verified" in verdict) return { assetId: asset.id };
  // Another path (the upload event's own verification) may have got there first.
  const { rows } = await asService(deps.db, (tx) =>
    sql<{ status: string; reject_reason: string | null }>`select status, reject_reason from content.assets where id = ${asset.id}::uuid`.execute(tx));
  if (rows[0]?.status === "verified") return { assetId: asset.id };
  return { refused: "rejected" in verdict ? String(verdict.rejected) : rows[0]?.reject_reason ?? JSON.stringify(verdict) };
}
