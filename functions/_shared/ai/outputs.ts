// Generated files go into Storage (bucket ai-outputs, the org's folder) before a job counts as
// done: provider URLs expire within the hour (OpenAI) or a day or two (Runway). Uploads go
// through the Storage API with the service key, as any server would, and are idempotent
// (x-upsert) so a retried job rewrites the same paths.
import type { GeneratedFile } from "./types.ts";

export interface StorageConfig {
  /** The project URL (SUPABASE_URL). */
  url: string;
  serviceRoleKey: string;
  fetch?: typeof fetch;
}

export interface StoredFile {
  bucket: string;
  path: string;
  mime_type: string;
  bytes: number;
  sha256: string;
}

export const OUTPUT_BUCKET = "ai-outputs";
/** Largest file fetched from a provider: a 1080p clip of a few minutes fits. */
const MAX_DOWNLOAD_BYTES = 500 * 1024 * 1024;

const EXTENSIONS: Record<string, string> = {
  "image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "video/mp4": "mp4", "audio/mpeg": "mp3", "audio/wav": "wav",
  "audio/x-wav": "wav", "application/json": "json",
};

export function extensionOf(mime: string): string {
  return EXTENSIONS[mime] ?? "bin";
}

async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", bytes as BufferSource);
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** The file's bytes: inline, or fetched from the provider's URL (bounded in time and size). */
export async function bytesOf(file: GeneratedFile, f: typeof fetch = fetch, timeoutMs = 120_000): Promise<Uint8Array> {
  if (file.bytes) return file.bytes;
  if (!file.url) throw new Error("the provider returned neither bytes nor a URL");
  const res = await f(file.url, { signal: AbortSignal.timeout(timeoutMs) });
  if (!res.ok) throw new Error(`fetching the provider's output failed with ${res.status}`);
  const declared = Number(res.headers.get("content-length") ?? 0);
  if (declared > MAX_DOWNLOAD_BYTES) throw new Error("the provider's output is larger than 500 MB");
  const body = new Uint8Array(await res.arrayBuffer());
  if (body.length > MAX_DOWNLOAD_BYTES) throw new Error("the provider's output is larger than 500 MB");
  return body;
}

/** Stores a job's files at ai-outputs/<org_id>/<job_id>/<n>.<ext>; returns where they are. */
export async function storeOutputs(cfg: StorageConfig, orgId: string, jobId: string, files: GeneratedFile[]): Promise<StoredFile[]> {
  const f = cfg.fetch ?? fetch;
  const stored: StoredFile[] = [];
  for (const [i, file] of files.entries()) {
    const bytes = await bytesOf(file, f);
    const path = `${orgId}/${jobId}/${i}.${extensionOf(file.mimeType)}`;
    const res = await f(`${cfg.url}/storage/v1/object/${OUTPUT_BUCKET}/${path}`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${cfg.serviceRoleKey}`,
        apikey: cfg.serviceRoleKey,
        "content-type": file.mimeType,
        "x-upsert": "true",
        "cache-control": "max-age=31536000",
      },
      body: bytes as BodyInit,
    });
    if (!res.ok) throw new Error(`storing ${path} failed: ${res.status} ${(await res.text()).slice(0, 200)}`);
    stored.push({ bucket: OUTPUT_BUCKET, path, mime_type: file.mimeType, bytes: bytes.length, sha256: await sha256Hex(bytes) });
  }
  return stored;
}

/** A short-lived URL for a provider to fetch an input file (a photo, an audio track) from Storage. */
export async function signedUrlFor(cfg: StorageConfig, storagePath: string, expiresIn = 3600): Promise<string> {
  const f = cfg.fetch ?? fetch;
  const slash = storagePath.indexOf("/");
  const bucket = storagePath.slice(0, slash);
  const name = storagePath.slice(slash + 1);
  const res = await f(`${cfg.url}/storage/v1/object/sign/${bucket}/${name}`, {
    method: "POST",
    headers: { authorization: `Bearer ${cfg.serviceRoleKey}`, apikey: cfg.serviceRoleKey, "content-type": "application/json" },
    body: JSON.stringify({ expiresIn }),
  });
  if (!res.ok) throw new Error(`signing ${storagePath} failed: ${res.status}`);
  const { signedURL } = (await res.json()) as { signedURL: string };
  return `${cfg.url}/storage/v1${signedURL}`;
}
