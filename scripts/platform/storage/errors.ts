// Storage's error replies, as the real server renders them: a JSON body
// `{statusCode, code, error, message}` whose `statusCode` is the real status as a string, sent
// with HTTP 400 for every 4xx-class error (500 stays 500). TUS is the exception: there the
// real status goes on the wire with the message as a plain-text body.
import type http from "node:http";

export interface RenderedError {
  statusCode: string;
  code: string;
  error: string;
  message: string;
}

export class StorageError extends Error {
  constructor(
    readonly code: string,
    /** The real status, shown in the body (and used as is by TUS). */
    readonly status: number,
    message: string,
    /** The legacy `error` field; defaults to the code. */
    readonly legacy?: string,
    /** The HTTP status to send instead of the usual 400/500 (role-checked routes send 403). */
    readonly httpStatus?: number,
  ) {
    super(message);
  }

  render(): RenderedError {
    return { statusCode: String(this.status), code: this.code, error: this.legacy ?? this.code, message: this.message };
  }

  get wireStatus(): number {
    return this.httpStatus ?? (this.status >= 500 ? this.status : 400);
  }
}

const e = (code: string, status: number, message: string, legacy?: string, httpStatus?: number) =>
  new StorageError(code, status, message, legacy, httpStatus);

export const ERRORS = {
  NoSuchBucket: () => e("NoSuchBucket", 404, "Bucket not found", "Bucket not found"),
  NoSuchKey: () => e("NoSuchKey", 404, "Object not found", "not_found"),
  /** The row exists but its bytes do not. */
  BytesNotFound: () => e("NoSuchKey", 404, "The resource was not found", "Not found"),
  AccessDenied: (message: string) => e("AccessDenied", 403, message || "Access denied", "Unauthorized"),
  RlsViolation: () => e("AccessDenied", 403, "new row violates row-level security policy", "Unauthorized"),
  InvalidRole: () => e("AccessDenied", 403, "Access denied: Invalid role", "Unauthorized", 403),
  KeyAlreadyExists: () => e("KeyAlreadyExists", 409, "The resource already exists", "Duplicate"),
  BucketAlreadyExists: () => e("BucketAlreadyExists", 409, "The resource already exists", "Duplicate"),
  ResourceAlreadyExists: () => e("ResourceAlreadyExists", 409, "The resource already exists", "Duplicate"),
  BucketNotEmpty: () => e("ResourceNotEmpty", 409, "The bucket you tried to delete is not empty"),
  EntityTooLarge: () => e("EntityTooLarge", 413, "The object exceeded the maximum allowed size", "Payload too large"),
  InvalidMimeType: (mime: string) => e("InvalidMimeType", 415, `mime type ${mime} is not supported`, "invalid_mime_type"),
  InvalidContentType: () => e("InvalidMimeType", 415, "Invalid Content-Type header", "invalid_mime_type"),
  InvalidKey: (key: string) => e("InvalidKey", 400, `Invalid key: ${key}`),
  InvalidBucketName: () => e("InvalidBucketName", 400, "Bucket name invalid", "Invalid Input"),
  InvalidFileSizeLimit: () => e("InvalidRequest", 400, "Invalid file size format, hint: use 20GB / 20MB / 30KB / 3B"),
  InvalidJWT: (message: string) => e("InvalidJWT", 400, message || "Invalid JWT"),
  InvalidSignature: (message = "Invalid signature") => e("InvalidSignature", 400, message),
  ExpiredSignature: () => e("ExpiredToken", 400, "The provided token has expired."),
  MetadataRequired: () => e("InvalidRequest", 400, "Metadata header is required"),
  NoContentProvided: () => e("InvalidRequest", 400, "No content provided"),
  InvalidRange: () => e("InvalidRange", 400, "invalid range provided", "invalid_range"),
  InvalidParameter: (name: string) => e("InvalidParameter", 400, `Invalid Parameter ${name}`),
  InvalidUploadId: () => e("InvalidUploadId", 400, "Invalid upload id"),
  /** A request that fails its schema, as Fastify's validation words it. */
  InvalidRequest: (message: string, legacy = "Bad Request") => e("InvalidRequest", 400, message, legacy),
  FeatureNotEnabled: (feature: string) => e("FeatureNotEnabled", 409, `The feature ${feature} is not enabled for this resource`),
  DatabaseTimeout: () => e("DatabaseTimeout", 544, "The connection to the database timed out", undefined, 544),
  InternalError: (message = "Internal server error") => e("InternalError", 500, message),
};

export function isStorageError(err: unknown): err is StorageError {
  return err instanceof StorageError;
}

interface PgLikeError {
  code?: string;
  message?: string;
}

/**
 * Maps a Postgres error to what the real server answers. `duplicate` says which 409 a unique
 * violation means where it happened (an object key, a bucket, or anything else).
 */
export function fromDbError(err: unknown, duplicate: () => StorageError = ERRORS.ResourceAlreadyExists): StorageError | undefined {
  const code = (err as PgLikeError)?.code;
  switch (code) {
    case "42501":
      return ERRORS.RlsViolation();
    case "23505":
      return duplicate();
    case "23503":
      return e("InvalidRequest", 404, "The related resource does not exist");
    case "57014":
      return ERRORS.DatabaseTimeout();
    default:
      // Data exceptions (a NUL byte, text Postgres cannot hold) come from the request's input.
      return code?.startsWith("22") ? ERRORS.InvalidRequest((err as PgLikeError).message ?? "Invalid input", "Bad Request") : undefined;
  }
}

/** Sends a REST error reply. Unknown errors become a 500 without internals. */
export function sendError(res: http.ServerResponse, err: unknown, log: (line: string) => void): void {
  const storageError = isStorageError(err) ? err : fromDbError(err);
  if (!storageError) log(`unexpected error: ${(err as Error)?.stack ?? String(err)}`);
  const body = (storageError ?? ERRORS.InternalError()).render();
  const status = (storageError ?? ERRORS.InternalError()).wireStatus;
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json; charset=utf-8", "content-length": Buffer.byteLength(text) });
  res.end(text);
}
