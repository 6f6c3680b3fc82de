// Resumable uploads (TUS 1.0) at /storage/v1/upload/resumable, on @tus/server, with the real
// server's lifecycle hooks:
// - the JWT is required before TUS sees the request (refused as a JSON AccessDenied, HTTP 400);
//   the `/sign` variant takes an upload token in `x-signature` instead;
// - on every POST, PATCH and DELETE the RLS dry run runs again as the caller (INSERT, or upsert
//   with `x-upsert: true`); refusals carry their real status and a plain-text body;
// - nothing reaches storage.objects until the last byte: then the row is written as superuser,
//   version = the upload's version, owner = the JWT's sub.
import { randomUUID } from "node:crypto";
import type http from "node:http";
import { MemoryLocker, Server, type ServerOptions } from "@tus/server";
import type pg from "pg";
import { ByteStore, objectMetadata } from "../bytes.ts";
import { type Caller, dryRun, mustBeAuthenticated, ownerUuid, type RequestScope, resolveCaller, withSuperuser } from "../caller.ts";
import type { StorageDeps } from "../context.ts";
import { fromDbError, isStorageError, sendError, StorageError, ERRORS } from "../errors.ts";
import { findBucket, mustFindBucket, probeObjectWrite, writeObject } from "../queries.ts";
import { mustBeAllowedMimeType } from "../validate.ts";
import { TusFileStore } from "./store.ts";
import { decodeUploadId, encodeUploadId, formatUploadId, parseUploadId } from "./upload-id.ts";

export const TUS_PATH = "/storage/v1/upload/resumable";
const SIGNED_PATH = `${TUS_PATH}/sign`;

/** What the hooks need to know about the request they run for. */
interface TusRequest {
  signed: boolean;
  caller: Caller;
  isUpsert: boolean;
  /** The sub that will own the object: the caller's, or the signer's for signed uploads. */
  owner?: string;
  /** The verified upload token, once checked (signed uploads). */
  signatureChecked?: boolean;
  headers: http.IncomingHttpHeaders;
  path: string;
}

type TusReq = Parameters<NonNullable<ServerOptions["namingFunction"]>>[0];

const OPERATIONS: Record<string, string> = {
  POST: "storage.tus.upload.create",
  PATCH: "storage.tus.upload.part",
  PUT: "storage.tus.upload.part",
  HEAD: "storage.tus.upload.get",
  DELETE: "storage.tus.upload.delete",
  OPTIONS: "storage.tus.options",
};

export interface TusServer {
  handle(req: http.IncomingMessage, res: http.ServerResponse, path: string): Promise<void>;
  close(): void;
}

export function createTusServer(deps: StorageDeps & { publicUrl: string }, store: ByteStore): TusServer {
  const { pool, config, signer, verifier, log } = deps;
  const datastore = new TusFileStore(`${config.root}/tus`, config.tusUrlExpiryMs);
  const requests = new WeakMap<http.IncomingMessage, TusRequest>();

  function contextOf(req: TusReq): { node: http.IncomingMessage; tus: TusRequest } {
    const node = (req as unknown as { runtime?: { node?: { req: http.IncomingMessage } } }).runtime?.node?.req;
    const tus = node && requests.get(node);
    if (!node || !tus) throw ERRORS.InternalError("Request object is missing");
    return { node, tus };
  }

  function scopeOf(node: http.IncomingMessage, tus: TusRequest): RequestScope {
    const op = OPERATIONS[node.method ?? "POST"] ?? OPERATIONS.POST!;
    return { operation: tus.signed ? `${op}_signed` : op, method: node.method ?? "POST", path: tus.path, headers: tus.headers };
  }

  /** Signed uploads: the `x-signature` token must be an upload token for this bucket and key. */
  async function checkSignature(node: http.IncomingMessage, tus: TusRequest, id: string): Promise<void> {
    if (!tus.signed || tus.signatureChecked) return;
    const upload = parseUploadId(id);
    const signature = node.headers["x-signature"];
    if (typeof signature !== "string" || !signature) throw ERRORS.InvalidSignature("Missing x-signature header");
    const payload = await signer.verify(signature, `${upload.bucket}/${upload.objectName}`, "upload");
    tus.owner = typeof payload.owner === "string" ? payload.owner : undefined;
    tus.isUpsert = payload.upsert === true;
    tus.signatureChecked = true;
  }

  /** The would-be row's metadata as the dry run sees it: `{mimetype, contentLength}`. */
  async function probeMetadata(node: http.IncomingMessage, id: string): Promise<Record<string, unknown>> {
    if (node.method === "POST") {
      const header = String(node.headers["upload-metadata"] ?? "");
      const ct = /(?:^|,)\s*contentType\s+([A-Za-z0-9+/=]*)/.exec(header)?.[1];
      return { mimetype: ct ? Buffer.from(ct, "base64").toString("utf8") : undefined, contentLength: Number(node.headers["upload-length"] ?? 0) };
    }
    const upload = await datastore.getUpload(id).catch(() => undefined);
    return { mimetype: upload?.metadata?.contentType ?? undefined, contentLength: upload?.size ?? 0 };
  }

  const options: ServerOptions = {
    path: TUS_PATH,
    locker: new MemoryLocker(),
    disableTerminationForFinishedUploads: true,
    allowedHeaders: ["Authorization", "X-Upsert", "Upload-Expires", "ApiKey", "x-signature"],

    namingFunction(_req, metadata) {
      if (!metadata) throw ERRORS.MetadataRequired();
      return formatUploadId({ bucket: metadata.bucketName ?? "", objectName: metadata.objectName ?? "", version: randomUUID() });
    },

    generateUrl(req, { id }) {
      const { tus } = contextOf(req);
      return `${deps.publicUrl}${tus.signed ? SIGNED_PATH : TUS_PATH}/${encodeUploadId(id)}`;
    },

    getFileIdFromRequest(_req, lastPath) {
      if (!lastPath || lastPath === "resumable" || lastPath === "sign") return undefined;
      const raw = decodeUploadId(lastPath);
      try {
        parseUploadId(raw);
        return raw;
      } catch {
        return undefined;
      }
    },

    /** min(bucket limit, global limit); the bucket must exist. */
    async maxSize(req, id) {
      if (!id) return config.fileSizeLimit;
      const { node, tus } = contextOf(req);
      await checkSignature(node, tus, id);
      const upload = parseUploadId(id);
      const bucket = await withSuperuser(pool, scopeOf(node, tus), (c) => mustFindBucket(c, upload.bucket));
      return Math.min(bucket.file_size_limit || config.fileSizeLimit, config.fileSizeLimit);
    },

    async onIncomingRequest(req, id) {
      const { node, tus } = contextOf(req);
      if (tus.signed) return await checkSignature(node, tus, id);
      if (node.method === "OPTIONS" || node.method === "HEAD") return;
      const upload = parseUploadId(id);
      const scope = scopeOf(node, tus);
      await withSuperuser(pool, scope, (c) => mustFindBucket(c, upload.bucket));
      const row = {
        bucket_id: upload.bucket,
        name: upload.objectName,
        owner: ownerUuid(tus.owner),
        owner_id: tus.owner ?? null,
        version: upload.version,
        metadata: await probeMetadata(node, id),
        user_metadata: null,
      };
      await dryRun(pool, tus.caller, scope, (c) => probeObjectWrite(c, row, tus.isUpsert));
    },

    async onUploadCreate(req, upload) {
      const { node, tus } = contextOf(req);
      const id = parseUploadId(upload.id);
      const bucket = await withSuperuser(pool, scopeOf(node, tus), (c) => findBucket(c, id.bucket));
      if (!bucket) throw ERRORS.NoSuchBucket();
      const metadata = { ...(upload.metadata ?? {}) };
      metadata.cacheControl = /^-?\d+$/.test(metadata.cacheControl ?? "") ? `max-age=${metadata.cacheControl}` : "no-cache";
      if (metadata.contentType) mustBeAllowedMimeType(metadata.contentType, bucket.allowed_mime_types);
      return { metadata };
    },

    async onUploadFinish(req, upload) {
      const { node, tus } = contextOf(req);
      const id = parseUploadId(upload.id);
      const file = await ByteStore.describe(datastore.filePath(upload.id));
      await store.adopt(datastore.filePath(upload.id), id.bucket, id.objectName, id.version);
      let userMetadata: Record<string, unknown> | undefined;
      try {
        const parsed: unknown = upload.metadata?.metadata ? JSON.parse(upload.metadata.metadata) : undefined;
        if (parsed && typeof parsed === "object") userMetadata = parsed as Record<string, unknown>;
      } catch {
        // Unparseable user metadata is dropped, as the real server drops it.
      }
      const metadata = objectMetadata(file, upload.metadata?.contentType || "application/octet-stream", upload.metadata?.cacheControl || "no-cache");
      try {
        const result = await withSuperuser(pool, scopeOf(node, tus), (c: pg.PoolClient) =>
          writeObject(
            c,
            {
              bucket_id: id.bucket,
              name: id.objectName,
              owner: ownerUuid(tus.owner),
              owner_id: tus.owner ?? null,
              version: id.version,
              metadata: { ...metadata },
              user_metadata: userMetadata,
            },
            tus.isUpsert,
          ),
        );
        if (result.replaced) await store.remove(id.bucket, id.objectName, result.replaced);
      } catch (err) {
        await store.remove(id.bucket, id.objectName, id.version);
        throw err;
      }
      return { headers: { "Tus-Complete": "1" } };
    },

    onResponseError(_req, err) {
      const storageError = isStorageError(err) ? err : err instanceof Error ? fromDbError(err) : undefined;
      if (storageError) return { status_code: storageError.status, body: storageError.message };
      if (err instanceof Error) log(`tus: unexpected error: ${err.stack ?? err.message}`);
      return undefined;
    },
  };
  const server = new Server({ ...options, datastore });

  const sweep = setInterval(() => {
    datastore.deleteExpired().catch((err: Error) => log(`tus: sweeping expired uploads failed: ${err.message}`));
  }, 10 * 60 * 1000);
  sweep.unref();

  return {
    async handle(req, res, path) {
      const pathname = path.split("?")[0]!;
      const signed = pathname === SIGNED_PATH || pathname.startsWith(`${SIGNED_PATH}/`);
      try {
        const caller = await resolveCaller(verifier, req);
        // The normal route sits behind the JWT hook; only OPTIONS (CORS) passes without one.
        if (!signed && req.method !== "OPTIONS") mustBeAuthenticated(caller);
        requests.set(req, {
          signed,
          caller,
          isUpsert: req.headers["x-upsert"] === "true",
          owner: signed ? undefined : caller.sub,
          headers: req.headers,
          path: pathname.slice("/storage/v1".length),
        });
      } catch (err) {
        sendError(res, err instanceof StorageError ? err : ERRORS.InternalError(), log);
        return;
      }
      await server.handle(req, res);
    },
    close() {
      clearInterval(sweep);
    },
  };
}
