// A standard (non-resumable) upload, in the real server's order:
//   1. the bucket, as superuser (NoSuchBucket), and the size limit: min(bucket, global);
//   2. the body's headers or multipart fields: content type (checked against the bucket's
//      allow-list), cache control, user metadata;
//   3. the RLS dry run: the would-be row inserted (or upserted) as the caller, rolled back;
//   4. the bytes, streamed to a temp file and refused past the limit;
//   5. as superuser: the key locked and the row written; the replaced version's bytes removed.
// Nothing reaches storage.objects or the objects folder unless every step passed.
import { once } from "node:events";
import type http from "node:http";
import { randomUUID } from "node:crypto";
import { PassThrough, type Readable } from "node:stream";
import type pg from "pg";
import { ByteStore, objectMetadata, type ReceivedFile } from "./bytes.ts";
import { type Caller, dryRun, ownerUuid, type RequestScope, withSuperuser } from "./caller.ts";
import type { StorageConfig } from "./config.ts";
import { ERRORS } from "./errors.ts";
import { multipartBoundary, readMultipart } from "./multipart.ts";
import { findObject, mustFindBucket, probeObjectWrite, writeObject, type ObjectWrite } from "./queries.ts";
import { isEmptyFolderPlaceholder, mustBeAllowedMimeType, mustBeValidKey } from "./validate.ts";

export interface UploadDeps {
  pool: pg.Pool;
  store: ByteStore;
  config: StorageConfig;
}

export interface UploadTarget {
  bucket: string;
  key: string;
  upsert: boolean;
  /** The JWT `sub` of whoever uploads (or of whoever signed the upload URL). */
  ownerId: string | undefined;
  /** Run the RLS dry run as this caller; signed uploads were checked when the URL was made. */
  checkAs?: Caller;
  scope: RequestScope;
}

interface IncomingFile {
  body: Readable;
  mimetype: string;
  cacheControl: string;
  userMetadata: Record<string, unknown> | undefined;
  /** Settles once the request body has been read to its end. */
  finished: () => Promise<void>;
}

function parseUserMetadata(json: string | undefined): Record<string, unknown> | undefined {
  if (json === undefined || json === "") return undefined;
  try {
    const value: unknown = JSON.parse(json);
    if (value && typeof value === "object" && !Array.isArray(value)) return value as Record<string, unknown>;
  } catch {
    // fall through
  }
  throw ERRORS.InvalidParameter("metadata");
}

/** Reads the rest of a request body and throws it away, so that a reply can follow. */
async function drain(req: http.IncomingMessage): Promise<void> {
  if (req.readableEnded || req.destroyed) return;
  req.unpipe();
  req.resume();
  await Promise.race([once(req, "end"), once(req, "close")]).catch(() => {});
}

async function incomingFile(req: http.IncomingMessage, limit: number): Promise<IncomingFile> {
  const boundary = multipartBoundary(req.headers["content-type"]);
  if (boundary) {
    const upload = await readMultipart(req, boundary);
    if (!upload.file) {
      await upload.done.catch(() => {});
      throw ERRORS.NoContentProvided();
    }
    const cacheTime = upload.fields.cacheControl;
    return {
      body: upload.file.stream,
      mimetype: upload.fields.contentType || upload.file.contentType || "application/octet-stream",
      cacheControl: cacheTime ? `max-age=${cacheTime}` : "no-cache",
      userMetadata: parseUserMetadata(upload.fields.metadata),
      finished: () => upload.done,
    };
  }
  // A raw body: known too large from its length, it is refused before a byte is read.
  const declared = req.headers["content-length"];
  if (declared !== undefined && Number(declared) > limit) throw ERRORS.EntityTooLarge();
  const xMetadata = req.headers["x-metadata"];
  let userMetadata: Record<string, unknown> | undefined;
  if (typeof xMetadata === "string" && xMetadata) {
    if (xMetadata.length > 2 * 1024 * 1024) throw ERRORS.InvalidParameter("metadata");
    userMetadata = parseUserMetadata(Buffer.from(xMetadata, "base64").toString("utf8"));
  }
  // Piped through a stream of our own: a refused body must not tear down the connection.
  const body = new PassThrough();
  req.pipe(body);
  // pipe() does not pass on a client that went away mid-body; without this the upload would wait forever.
  req.once("close", () => {
    if (!req.complete) body.destroy(ERRORS.InvalidRequest("Request aborted", "Aborted"));
  });
  return {
    body,
    mimetype: req.headers["content-type"] || "application/octet-stream",
    cacheControl: (req.headers["cache-control"] as string | undefined) || "no-cache",
    userMetadata,
    finished: () => drain(req),
  };
}

export async function uploadObject(deps: UploadDeps, req: http.IncomingMessage, target: UploadTarget): Promise<{ id: string; version: string }> {
  const { pool, store, config } = deps;
  mustBeValidKey(target.key);
  const bucket = await withSuperuser(pool, target.scope, (c) => mustFindBucket(c, target.bucket));
  // Folder placeholders (how Studio shows an empty folder) must be empty.
  const limit = isEmptyFolderPlaceholder(target.key) ? 0 : Math.min(bucket.file_size_limit || config.fileSizeLimit, config.fileSizeLimit);

  const file = await incomingFile(req, limit);
  const owner = ownerUuid(target.ownerId);
  const version = randomUUID();
  let received: ReceivedFile | undefined;
  try {
    if (!isEmptyFolderPlaceholder(target.key)) mustBeAllowedMimeType(file.mimetype, bucket.allowed_mime_types);

    const row: ObjectWrite = {
      bucket_id: target.bucket,
      name: target.key,
      owner,
      owner_id: target.ownerId ?? null,
      version,
      metadata: { mimetype: file.mimetype, contentLength: Number(req.headers["content-length"] ?? 0) },
      user_metadata: file.userMetadata,
    };
    if (target.checkAs) {
      await dryRun(pool, target.checkAs, target.scope, (c) => probeObjectWrite(c, row, target.upsert));
    } else if (!target.upsert) {
      const existing = await withSuperuser(pool, target.scope, (c) => findObject(c, target.bucket, target.key));
      if (existing) throw ERRORS.KeyAlreadyExists();
    }

    received = await store.receive(file.body, limit);
    await file.finished();
    await store.commit(received, target.bucket, target.key, version);
    const committed = received;
    received = undefined;

    try {
      const metadata = objectMetadata(committed, file.mimetype, file.cacheControl);
      const result = await withSuperuser(pool, target.scope, (c) => writeObject(c, { ...row, metadata: { ...metadata } }, target.upsert));
      if (result.replaced) await store.remove(target.bucket, target.key, result.replaced);
      return { id: result.id, version };
    } catch (err) {
      await store.remove(target.bucket, target.key, version);
      throw err;
    }
  } catch (err) {
    if (received) await store.discard(received);
    // The client is still sending; read it all so that it can read our answer.
    file.body.destroy();
    await file.finished().catch(() => {});
    throw err;
  }
}
