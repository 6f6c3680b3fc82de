// Input rules the real server applies before touching the database: object keys, bucket
// names, MIME types against a bucket's allow-list, file size strings, and request bodies
// (reported in the words of Fastify's schema validation).
import { z } from "zod";
import { ERRORS } from "./errors.ts";

// S3-safe characters plus the few the real server also accepts (src/storage/limits.ts).
const KEY_CHARS = /^[A-Za-z0-9_/!.*'() &$=@;:+,?-]*$/;
const BUCKET_CHARS = /^[A-Za-z0-9_!.*'() &$=@;:+,?-]*$/;

export function isValidKey(key: string): boolean {
  if (key.length === 0 || !KEY_CHARS.test(key)) return false;
  // `.` and `..` segments would address another key once a path is normalised (PR #883).
  return key.split("/").every((segment) => segment !== "." && segment !== "..");
}

export function mustBeValidKey(key: string | undefined): asserts key is string {
  if (!key || !isValidKey(key)) throw ERRORS.InvalidKey(key ?? "");
}

export function isValidBucketName(name: string): boolean {
  return name.length > 0 && name.length <= 100 && BUCKET_CHARS.test(name) && name !== "." && name !== "..";
}

export function mustBeValidBucketName(name: string | undefined): asserts name is string {
  if (!name || !isValidBucketName(name)) throw ERRORS.InvalidBucketName();
}

/** Placeholder objects that make an empty folder visible; they skip the MIME check. */
export function isEmptyFolderPlaceholder(key: string): boolean {
  return key.endsWith(".emptyFolderPlaceholder");
}

/** A bucket's `allowed_mime_types` entries are `type/sub` or `type/*`. */
export function mustBeAllowedMimeType(mime: string, allowed: string[] | null | undefined): void {
  if (!allowed || allowed.length === 0) return;
  const [type, sub] = mime.split("/");
  if (!type || sub === undefined) throw ERRORS.InvalidMimeType(mime);
  const ok = allowed.some((entry) => {
    const [aType, aSub] = entry.split("/");
    return aType === type && (aSub === "*" || aSub === sub);
  });
  if (!ok) throw ERRORS.InvalidMimeType(mime);
}

/** `20MB`, `1.5GB`, `300KB`, `12B` (decimal units), or a plain number of bytes. */
export function parseFileSizeLimit(value: unknown): number | null | undefined {
  if (value === undefined || value === null) return value;
  if (typeof value === "number") {
    if (!Number.isInteger(value) || value < 0) throw ERRORS.InvalidFileSizeLimit();
    return value;
  }
  if (typeof value !== "string") throw ERRORS.InvalidFileSizeLimit();
  if (/^\d+$/.test(value)) return Number(value);
  const m = /^([0-9]+(?:\.[0-9]+)?)(gb|mb|kb|b)$/i.exec(value);
  if (!m) throw ERRORS.InvalidFileSizeLimit();
  const n = Number.parseFloat(Number.parseFloat(m[1]!).toPrecision(3));
  const unit = { GB: 1e9, MB: 1e6, KB: 1e3, B: 1 }[m[2]!.toUpperCase() as "GB" | "MB" | "KB" | "B"];
  return Math.round(n * unit);
}

export function isUuid(value: string | undefined): value is string {
  return !!value && /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(value);
}

/** Parses `input` with `schema`, or throws InvalidRequest worded as Fastify/ajv would. */
export function parseBody<T>(schema: z.ZodType<T>, input: unknown, where = "body"): T {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const at = [where, ...issue.path.map(String)];
  const field = at.slice(0, -1).join("/");
  const last = String(issue.path[issue.path.length - 1] ?? "");
  let message: string;
  if (issue.code === "invalid_type" && issue.path.length > 0 && /received undefined/.test(issue.message)) {
    message = `${field} must have required property '${last}'`;
  } else if (issue.code === "invalid_type") {
    message = `${at.join("/")} must be ${issue.expected}`;
  } else if (issue.code === "too_small") {
    message = `${at.join("/")} must NOT have fewer than ${String(issue.minimum)} ${issue.origin === "array" ? "items" : ""}`.trim();
  } else if (issue.code === "too_big") {
    message = `${at.join("/")} must NOT have more than ${String(issue.maximum)} ${issue.origin === "array" ? "items" : ""}`.trim();
  } else if (issue.code === "invalid_value") {
    message = `${at.join("/")} must be equal to one of the allowed values`;
  } else {
    message = `${at.join("/")} ${issue.message}`;
  }
  throw ERRORS.InvalidRequest(message);
}
