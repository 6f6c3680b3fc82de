// A resumable upload's id, as the real server forms it: `<bucket>/<key>/<version>`, with a
// fresh version uuid per upload, and base64url-encoded as the last segment of the upload URL.
import { ERRORS } from "../errors.ts";
import { isUuid, mustBeValidBucketName, mustBeValidKey } from "../validate.ts";

export interface UploadId {
  bucket: string;
  objectName: string;
  version: string;
}

export function formatUploadId(id: UploadId): string {
  mustBeValidBucketName(id.bucket);
  mustBeValidKey(id.objectName);
  return `${id.bucket}/${id.objectName}/${id.version}`;
}

export function parseUploadId(raw: string): UploadId {
  const first = raw.indexOf("/");
  const last = raw.lastIndexOf("/");
  if (first < 0 || last <= first) throw ERRORS.InvalidUploadId();
  const id = { bucket: raw.slice(0, first), objectName: raw.slice(first + 1, last), version: raw.slice(last + 1) };
  if (!isUuid(id.version)) throw ERRORS.InvalidUploadId();
  mustBeValidBucketName(id.bucket);
  mustBeValidKey(id.objectName);
  return id;
}

export const encodeUploadId = (raw: string) => Buffer.from(raw, "utf8").toString("base64url");
export const decodeUploadId = (segment: string) => Buffer.from(segment, "base64url").toString("utf8");
