// Assets: reserving an upload (api, as the caller), verifying the real bytes (worker), copy on
// write for forks (api), and removing bytes nothing references (worker).
//
// Transactions: no row lock is held across a Storage call. A reservation commits first, then its
// upload URL is signed (an unused reservation expires); copy on write reads its target, copies
// with no transaction open, then repoints the row. Verification reads the bytes likewise, then
// records the verdict in one short transaction; a rejected file's bytes are removed after that
// commit (if removal fails, the retention job removes them later, as it does any orphan).
import { sql } from "kysely";
import { asService, type Db, type Tx } from "../db/client.ts";
import { ApiError } from "../http/errors.ts";
import { sha256Hex, sniff } from "./sniff.ts";
import { ASSET_BUCKET, copyObject, readObject, removeObjects, signUpload, type StorageAccess } from "./storage.ts";

const MAX_ASSET_BYTES = 100 * 1024 * 1024;

export interface AssetRow {
  id: string;
  org_id: string;
  document_id: string;
  bucket_id: string;
  object_path: string;
  filename: string | null;
  declared_mime: string | null;
  mime_type: string | null;
  size_bytes: number | null;
  sha256: string | null;
  width: number | null;
  height: number | null;
  duration_ms: number | null;
  status: "pending" | "uploaded" | "verified" | "rejected";
  reject_reason: string | null;
  source_asset_id: string | null;
  created_at: string;
  verified_at: string | null;
}

const COLUMNS = sql.raw(`id, org_id, document_id, bucket_id, object_path, filename, declared_mime, mime_type, size_bytes, sha256,
  width, height, duration_ms, status, reject_reason, source_asset_id, created_at, verified_at`);

/** Reserves the asset row (edit access, the plan's storage); the caller commits, then signs. */
export async function reserveAsset(tx: Tx, documentId: string, input: { filename: string; mime_type: string; size: number }): Promise<AssetRow> {
  const { rows: [asset] } = await sql<AssetRow>`
    select ${COLUMNS} from private.content_reserve_asset(${documentId}::uuid, ${input.filename}, ${input.mime_type}, ${input.size}::bigint)`
    .execute(tx);
  return asset;
}

/** A URL that uploads exactly the reserved object (valid two hours; an unused reservation expires). */
export async function signAssetUpload(storage: StorageAccess, asset: AssetRow) {
  const signed = await signUpload(storage, asset.bucket_id, asset.object_path);
  return { bucket: asset.bucket_id, path: asset.object_path, ...signed };
}

export interface DetachTarget {
  bucket_id: string;
  from: string;
  to: string;
}

/** Where a forked asset's bytes are and where they belong (edit access; no lock taken). */
export async function detachTarget(tx: Tx, assetId: string): Promise<DetachTarget> {
  return (await sql<{ target: DetachTarget }>`select private.content_detach_target(${assetId}::uuid) as target`.execute(tx)).rows[0].target;
}

/** Copies a forked asset's bytes to its own path (before it is edited); no transaction is open meanwhile. */
export async function copyAssetBytes(storage: StorageAccess, target: DetachTarget): Promise<void> {
  if (target.from !== target.to) await copyObject(storage, target.bucket_id, target.from, target.to);
}

/** Points the row at its own copy (if it still points where the copy came from). */
export async function repointAsset(tx: Tx, assetId: string, target: DetachTarget): Promise<AssetRow> {
  if (target.from !== target.to) await sql`select private.content_repoint_asset(${assetId}::uuid, ${target.from}, ${target.to})`.execute(tx);
  const { rows: [asset] } = await sql<AssetRow>`select ${COLUMNS} from content.assets where id = ${assetId}::uuid`.execute(tx);
  if (!asset) throw new ApiError(404, "not_found", "asset not found");
  return asset;
}

export interface AssetWorkerDeps {
  db: Db;
  storage: StorageAccess;
}

export async function verifyAsset(deps: AssetWorkerDeps, assetId: string) {
  const asset = await asService(deps.db, async (tx) =>
    (await sql<{ bucket_id: string; object_path: string; declared_mime: string | null; status: string }>`
      select bucket_id, object_path, declared_mime, status from content.assets where id = ${assetId}::uuid`.execute(tx)).rows[0]);
  if (!asset || !["pending", "uploaded"].includes(asset.status)) return { skipped: "not awaiting verification" };
  const bytes = await readObject(deps.storage, asset.bucket_id, asset.object_path, MAX_ASSET_BYTES);
  if (!bytes) return { skipped: "no bytes uploaded yet" };
  const verdict = await sniff(bytes, asset.declared_mime);
  const sha256 = await sha256Hex(bytes);
  await asService(deps.db, async (tx) => {
    await sql`select private.content_finish_asset(
      ${assetId}::uuid, ${verdict.ok}, ${verdict.mime}, ${bytes.length}::bigint, ${sha256},
      ${verdict.ok ? verdict.width : null}::int, ${verdict.ok ? verdict.height : null}::int, ${verdict.ok ? verdict.durationMs : null}::int,
      ${verdict.ok ? null : verdict.reason})`.execute(tx);
  });
  if (!verdict.ok) await removeObjects(deps.storage, asset.bucket_id, [asset.object_path]);
  return verdict.ok ? { verified: verdict.mime } : { rejected: verdict.reason };
}

/**
 * Drops an asset a server job made but will not use (a picture for a card that was canceled):
 * the row goes now, so it no longer counts against the plan's storage; its bytes, referenced by
 * nothing, go with the retention job.
 */
export async function discardAsset(db: Db, assetId: string): Promise<void> {
  await asService(db, async (tx) => {
    await sql`delete from content.assets where id = ${assetId}::uuid`.execute(tx);
  });
}

/**
 * Unreferenced bytes older than a day (a fork may still be copying references to them, and an
 * upload may still be on its way) and reservations never used, older than three hours (a signed
 * upload URL lives two).
 */
export async function removeOrphans(deps: AssetWorkerDeps, ages: { orphans?: string; reservations?: string } = {}) {
  const { names, expired } = await asService(deps.db, async (tx) => ({
    expired: (await sql<{ n: number }>`select private.content_expire_reservations(${ages.reservations ?? "3 hours"}::interval) as n`.execute(tx))
      .rows[0].n,
    names: (await sql<{ name: string }>`select name from private.content_orphan_objects(${ages.orphans ?? "24 hours"}::interval, 500) name`
      .execute(tx)).rows.map((r) => r.name),
  }));
  for (let i = 0; i < names.length; i += 100) await removeObjects(deps.storage, ASSET_BUCKET, names.slice(i, i + 100));
  return { orphans_removed: names.length, reservations_expired: expired };
}
