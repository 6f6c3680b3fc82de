// Looking behind the Storage stand-in in tests: the storage.objects row of a key, and the
// files it keeps on disk for a key (object versions, unfinished TUS uploads), so that a test
// can prove a refused request left nothing behind.
import { randomUUID } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { ByteStore } from "../../scripts/platform/storage/bytes.ts";
import { admin } from "./db.ts";

let root: string | undefined;

/** `<dataDir>/storage`; the stack keeps Postgres in `<dataDir>/db`. */
export async function storageRoot(): Promise<string> {
  if (!root) {
    const { rows } = await admin.query<{ dir: string }>("select current_setting('data_directory') as dir");
    root = path.join(path.dirname(rows[0]!.dir), "storage");
  }
  return root;
}

/** The stored versions (files) of an object key. */
export async function objectFiles(bucket: string, key: string): Promise<string[]> {
  const dir = path.dirname(new ByteStore(await storageRoot()).path(bucket, key, "v"));
  return fs.existsSync(dir) ? fs.readdirSync(dir) : [];
}

/** TUS uploads (finished or not) the stand-in holds for a key. */
export async function tusUploadsFor(bucket: string, key: string): Promise<string[]> {
  const dir = path.join(await storageRoot(), "tus");
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith(".json"))
    .filter((f) => {
      const info = JSON.parse(fs.readFileSync(path.join(dir, f), "utf8")) as { metadata?: Record<string, string> };
      return info.metadata?.bucketName === bucket && info.metadata?.objectName === key;
    });
}

export interface ObjectRowView {
  id: string;
  name: string;
  owner: string | null;
  owner_id: string | null;
  version: string;
  metadata: Record<string, unknown>;
  user_metadata: Record<string, unknown> | null;
}

export async function objectRow(bucket: string, key: string): Promise<ObjectRowView | undefined> {
  const { rows } = await admin.query<ObjectRowView>(
    "select id, name, owner, owner_id, version, metadata, user_metadata from storage.objects where bucket_id = $1 and name = $2",
    [bucket, key],
  );
  return rows[0];
}

/** A bucket id no other test file uses. */
export function uniqueBucket(prefix: string): string {
  return `${prefix}-${randomUUID().slice(0, 8)}`;
}

export const sha256 = async (data: Blob | Uint8Array | Buffer) => {
  const { createHash } = await import("node:crypto");
  const bytes = data instanceof Blob ? Buffer.from(await data.arrayBuffer()) : Buffer.from(data);
  return createHash("sha256").update(bytes).digest("hex");
};

/** Asserts a storage-js error as the real server shapes it: HTTP 400, the real status in the body. */
export function expectStorageError(
  error: unknown,
  expected: { statusCode: string; code?: string; message?: string | RegExp; httpStatus?: number },
): void {
  const e = error as { name?: string; status?: number; statusCode?: string; code?: string; message?: string } | null;
  if (!e) throw new Error(`expected a Storage error ${expected.statusCode}, got none`);
  const actual = { name: e.name, status: e.status, statusCode: e.statusCode, code: e.code, message: e.message };
  const want: Record<string, unknown> = { name: "StorageApiError", status: expected.httpStatus ?? 400, statusCode: expected.statusCode };
  if (expected.code) want.code = expected.code;
  for (const [k, v] of Object.entries(want)) {
    if (actual[k as keyof typeof actual] !== v) throw new Error(`storage error ${k}: expected ${String(v)}, got ${JSON.stringify(actual)}`);
  }
  if (expected.message !== undefined) {
    const ok = typeof expected.message === "string" ? e.message === expected.message : expected.message.test(e.message ?? "");
    if (!ok) throw new Error(`storage error message: expected ${String(expected.message)}, got ${JSON.stringify(actual)}`);
  }
}
