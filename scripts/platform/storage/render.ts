// Sends an object's bytes as the real server's asset renderer does: content type, length, ETag,
// Last-Modified and Cache-Control from the stored metadata, byte ranges, conditional requests
// (304), and `?download[=name]` as an attachment.
import type http from "node:http";
import { pipeline } from "node:stream/promises";
import type { ByteStore } from "./bytes.ts";
import { ERRORS } from "./errors.ts";
import type { ObjectRow } from "./queries.ts";

export interface RenderOptions {
  /** The `download` query parameter: absent (null), empty (attachment), or the file name to give. */
  download: string | null;
  head: boolean;
  /** Signed URLs say until when the link works. */
  expires?: Date;
}

function parseRange(header: string, size: number): { start: number; end: number } | "invalid" | undefined {
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === "" && m[2] === "")) return "invalid";
  let start: number;
  let end: number;
  if (m[1] === "") {
    const suffix = Number(m[2]);
    if (suffix === 0) return "invalid";
    start = Math.max(0, size - suffix);
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1);
  }
  if (start > end || start >= size) return "invalid";
  return { start, end };
}

/** HTML is served as plain text, so that a stored page cannot run in the project's origin. */
function contentType(mimetype: unknown): string {
  const type = typeof mimetype === "string" && mimetype ? mimetype : "application/octet-stream";
  return type.includes("text/html") ? "text/plain" : type;
}

export async function renderObject(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  store: ByteStore,
  obj: ObjectRow,
  opts: RenderOptions,
): Promise<void> {
  const version = obj.version ?? "";
  const stat = await store.stat(obj.bucket_id, obj.name, version);
  if (!stat) throw ERRORS.BytesNotFound();
  const meta = obj.metadata ?? {};
  const size = stat.size;
  const eTag = typeof meta.eTag === "string" ? meta.eTag : undefined;
  const lastModified = new Date(typeof meta.lastModified === "string" ? meta.lastModified : obj.updated_at);

  const headers: http.OutgoingHttpHeaders = {
    "content-type": contentType(meta.mimetype),
    "last-modified": lastModified.toUTCString(),
    "accept-ranges": "bytes",
  };
  if (eTag) headers.etag = eTag;
  // A signed URL says when it expires instead of how long to cache.
  if (opts.expires) headers.expires = opts.expires.toUTCString();
  else headers["cache-control"] = typeof meta.cacheControl === "string" ? meta.cacheControl : "no-cache";
  if (opts.download === "") headers["content-disposition"] = "attachment;";
  else if (opts.download !== null) {
    const name = encodeURIComponent(opts.download);
    headers["content-disposition"] = `attachment; filename=${name}; filename*=UTF-8''${name};`;
  }

  const ifNoneMatch = req.headers["if-none-match"];
  const ifModifiedSince = req.headers["if-modified-since"];
  const notModified = ifNoneMatch
    ? !!eTag && ifNoneMatch.split(",").some((t) => t.trim() === eTag || t.trim() === "*")
    : !!ifModifiedSince && Math.floor(lastModified.getTime() / 1000) <= Math.floor(Date.parse(ifModifiedSince) / 1000);
  if (notModified) {
    res.writeHead(304, headers);
    res.end();
    return;
  }

  let range: { start: number; end: number } | undefined;
  const rangeHeader = req.headers.range;
  if (rangeHeader && size > 0) {
    const parsed = parseRange(rangeHeader, size);
    if (parsed === "invalid") throw ERRORS.InvalidRange();
    range = parsed;
  }
  if (range) {
    headers["content-range"] = `bytes ${range.start}-${range.end}/${size}`;
    headers["content-length"] = range.end - range.start + 1;
  } else {
    headers["content-length"] = size;
  }
  res.writeHead(range ? 206 : 200, headers);
  if (opts.head || req.method === "HEAD") {
    res.end();
    return;
  }
  try {
    await pipeline(store.read(obj.bucket_id, obj.name, version, range), res);
  } catch {
    // The client went away mid-download; nothing to answer.
    res.destroy();
  }
}
