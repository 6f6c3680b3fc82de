// The SQL the real server runs against `storage.buckets` and `storage.objects`. Each function
// takes the transaction it runs in; whether that is the caller's (RLS decides) or the
// superuser's is the route's choice, as in the real server.
import type pg from "pg";
import type { ObjectMetadata } from "./bytes.ts";
import { ERRORS, fromDbError } from "./errors.ts";

export interface BucketRow {
  id: string;
  name: string;
  owner: string | null;
  owner_id: string | null;
  public: boolean;
  type: string;
  file_size_limit: number | null;
  allowed_mime_types: string[] | null;
  created_at: Date;
  updated_at: Date;
}

export interface ObjectRow {
  id: string;
  bucket_id: string;
  name: string;
  owner: string | null;
  owner_id: string | null;
  version: string | null;
  metadata: (Partial<ObjectMetadata> & Record<string, unknown>) | null;
  user_metadata: Record<string, unknown> | null;
  created_at: Date;
  updated_at: Date;
  last_accessed_at: Date;
}

const BUCKET_COLUMNS = "id, name, owner, owner_id, public, type, file_size_limit, allowed_mime_types, created_at, updated_at";
const OBJECT_COLUMNS = "id, bucket_id, name, owner, owner_id, version, metadata, user_metadata, created_at, updated_at, last_accessed_at";

// bigint columns arrive as strings from pg; the API shows numbers.
function bucketFrom(row: Record<string, unknown>): BucketRow {
  return { ...(row as unknown as BucketRow), file_size_limit: row.file_size_limit == null ? null : Number(row.file_size_limit) };
}

/** Runs a query, turning Postgres errors into the Storage errors the real server maps them to. */
async function run<R extends pg.QueryResultRow>(
  c: pg.PoolClient,
  sql: string,
  params: unknown[],
  duplicate?: () => ReturnType<typeof ERRORS.KeyAlreadyExists>,
): Promise<R[]> {
  try {
    return (await c.query<R>(sql, params)).rows;
  } catch (err) {
    throw fromDbError(err, duplicate) ?? err;
  }
}

export async function findBucket(c: pg.PoolClient, id: string): Promise<BucketRow | undefined> {
  const [row] = await run(c, `select ${BUCKET_COLUMNS} from storage.buckets where id = $1`, [id]);
  return row ? bucketFrom(row) : undefined;
}

export async function mustFindBucket(c: pg.PoolClient, id: string): Promise<BucketRow> {
  const bucket = await findBucket(c, id);
  if (!bucket) throw ERRORS.NoSuchBucket();
  return bucket;
}

export async function listBuckets(
  c: pg.PoolClient,
  opts: { limit?: number; offset?: number; search?: string; sortColumn: string; sortOrder: string },
): Promise<BucketRow[]> {
  const params: unknown[] = [];
  let where = "";
  if (opts.search) {
    params.push(`%${opts.search.replace(/[\\%_]/g, (ch) => `\\${ch}`)}%`);
    where = `where name ilike $${params.length}`;
  }
  let page = "";
  if (opts.limit !== undefined) {
    params.push(opts.limit);
    page += ` limit $${params.length}`;
  }
  if (opts.offset !== undefined) {
    params.push(opts.offset);
    page += ` offset $${params.length}`;
  }
  // sortColumn/sortOrder are checked against fixed lists by the route.
  const rows = await run(c, `select ${BUCKET_COLUMNS} from storage.buckets ${where} order by ${opts.sortColumn} ${opts.sortOrder}${page}`, params);
  return rows.map(bucketFrom);
}

export async function createBucket(
  c: pg.PoolClient,
  b: { id: string; name: string; owner: string | null; owner_id: string | null; public: boolean; file_size_limit: number | null; allowed_mime_types: string[] | null },
): Promise<void> {
  await run(
    c,
    `insert into storage.buckets (id, name, owner, owner_id, public, file_size_limit, allowed_mime_types)
     values ($1, $2, $3, $4, $5, $6, $7)`,
    [b.id, b.name, b.owner, b.owner_id, b.public, b.file_size_limit, b.allowed_mime_types],
    ERRORS.BucketAlreadyExists,
  );
}

export async function updateBucket(
  c: pg.PoolClient,
  id: string,
  fields: { public?: boolean; file_size_limit?: number | null; allowed_mime_types?: string[] | null },
): Promise<BucketRow | undefined> {
  const sets: string[] = [];
  const params: unknown[] = [id];
  for (const [column, value] of Object.entries(fields)) {
    if (value === undefined) continue;
    params.push(value);
    sets.push(`${column} = $${params.length}`);
  }
  sets.push("updated_at = now()");
  const [row] = await run(c, `update storage.buckets set ${sets.join(", ")} where id = $1 returning ${BUCKET_COLUMNS}`, params);
  return row ? bucketFrom(row) : undefined;
}

export async function deleteBucket(c: pg.PoolClient, id: string): Promise<number> {
  return (await run(c, "delete from storage.buckets where id = $1 returning id", [id])).length;
}

export async function countObjects(c: pg.PoolClient, bucket: string, upTo = 10): Promise<number> {
  const rows = await run<{ n: number }>(c, "select count(*)::int as n from (select 1 from storage.objects where bucket_id = $1 limit $2) o", [bucket, upTo]);
  return rows[0]!.n;
}

export async function findObject(c: pg.PoolClient, bucket: string, name: string, opts: { forUpdate?: boolean } = {}): Promise<ObjectRow | undefined> {
  const [row] = await run<ObjectRow>(
    c,
    `select ${OBJECT_COLUMNS} from storage.objects where bucket_id = $1 and name = $2${opts.forUpdate ? " for update" : ""}`,
    [bucket, name],
  );
  return row;
}

export async function mustFindObject(c: pg.PoolClient, bucket: string, name: string, opts: { forUpdate?: boolean } = {}): Promise<ObjectRow> {
  const row = await findObject(c, bucket, name, opts);
  if (!row) throw ERRORS.NoSuchKey();
  return row;
}

export async function findObjectNames(c: pg.PoolClient, bucket: string, names: string[]): Promise<Set<string>> {
  const rows = await run<{ name: string }>(c, "select name from storage.objects where bucket_id = $1 and name = any($2::text[])", [bucket, names]);
  return new Set(rows.map((r) => r.name));
}

export interface ObjectWrite {
  bucket_id: string;
  name: string;
  owner: string | null;
  owner_id: string | null;
  version: string;
  metadata: Record<string, unknown>;
  user_metadata: Record<string, unknown> | null | undefined;
}

const WRITE_SQL = `insert into storage.objects (bucket_id, name, owner, owner_id, version, metadata, user_metadata)
  values ($1, $2, $3, $4, $5, $6, $7)`;
const UPSERT_SQL = `${WRITE_SQL}
  on conflict (name, bucket_id) do update set owner = excluded.owner, owner_id = excluded.owner_id,
    version = excluded.version, metadata = excluded.metadata, user_metadata = excluded.user_metadata`;

function writeParams(w: ObjectWrite): unknown[] {
  return [w.bucket_id, w.name, w.owner, w.owner_id, w.version, w.metadata, w.user_metadata ?? null];
}

/**
 * The permission probe: the would-be row inserted (or upserted) as the caller, inside a
 * transaction the caller rolls back. RLS refuses with 42501; an existing key without upsert
 * is a unique violation.
 */
export async function probeObjectWrite(c: pg.PoolClient, w: ObjectWrite, upsert: boolean): Promise<void> {
  await run(c, upsert ? UPSERT_SQL : WRITE_SQL, writeParams(w), ERRORS.KeyAlreadyExists);
}

/**
 * The real write (as superuser): locks the key, then inserts or upserts the row. Returns the
 * row's id and the version it replaced, whose bytes the caller removes after commit.
 */
export async function writeObject(c: pg.PoolClient, w: ObjectWrite, upsert: boolean): Promise<{ id: string; replaced?: string }> {
  await c.query("select pg_advisory_xact_lock(hashtextextended($1, 0))", [`${w.bucket_id}/${w.name}`]);
  const existing = await findObject(c, w.bucket_id, w.name, { forUpdate: true });
  if (existing && !upsert) throw ERRORS.KeyAlreadyExists();
  const [row] = await run<{ id: string }>(c, `${upsert ? UPSERT_SQL : WRITE_SQL} returning id`, writeParams(w), ERRORS.KeyAlreadyExists);
  const replaced = existing?.version && existing.version !== w.version ? existing.version : undefined;
  return { id: row!.id, replaced };
}

/** Renames an object in place (move), keeping its id. */
export async function moveObjectRow(
  c: pg.PoolClient,
  from: { bucket: string; name: string },
  to: { bucket: string; name: string; version: string; owner: string | null; owner_id: string | null },
): Promise<ObjectRow | undefined> {
  const [row] = await run<ObjectRow>(
    c,
    `update storage.objects set bucket_id = $3, name = $4, version = $5, owner = $6, owner_id = $7
     where bucket_id = $1 and name = $2 returning ${OBJECT_COLUMNS}`,
    [from.bucket, from.name, to.bucket, to.name, to.version, to.owner, to.owner_id],
    ERRORS.KeyAlreadyExists,
  );
  return row;
}

/** Deletes the named objects the transaction's role may delete (and see); returns them. */
export async function deleteObjects(c: pg.PoolClient, bucket: string, names: string[]): Promise<ObjectRow[]> {
  return await run<ObjectRow>(
    c,
    `delete from storage.objects where bucket_id = $1 and name = any($2::text[]) returning ${OBJECT_COLUMNS}`,
    [bucket, names],
  );
}

export interface SearchRow {
  name: string;
  id: string | null;
  updated_at: Date | null;
  created_at: Date | null;
  last_accessed_at: Date | null;
  metadata: Record<string, unknown> | null;
}

export async function searchObjects(
  c: pg.PoolClient,
  bucket: string,
  prefix: string,
  opts: { limit: number; offset: number; search: string; column: string; order: string },
): Promise<SearchRow[]> {
  return await run<SearchRow>(c, "select * from storage.search($1, $2, $3, $4, $5, $6, $7, $8)", [
    prefix,
    bucket,
    opts.limit,
    prefix.split("/").length,
    opts.offset,
    opts.search,
    opts.column,
    opts.order,
  ]);
}
