// The Storage API with the service key, as any server calls it: signed upload and download URLs
// for asset paths the content RPCs have vouched for, reading an object's bytes for
// verification, copy-on-write, writing files the worker makes, and removing what nothing references.
export interface StorageAccess {
  /** The project URL (SUPABASE_URL). */
  url: string;
  serviceRoleKey: string;
  fetch?: typeof fetch;
}

export const ASSET_BUCKET = "content-assets";

const encodePath = (path: string) => path.split("/").map(encodeURIComponent).join("/");

async function call(cfg: StorageAccess, method: string, path: string, body?: unknown): Promise<Response> {
  const f = cfg.fetch ?? fetch;
  const res = await f(`${cfg.url}/storage/v1${path}`, {
    method,
    headers: {
      authorization: `Bearer ${cfg.serviceRoleKey}`,
      apikey: cfg.serviceRoleKey,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(30_000),
  });
  return res;
}

async function ok(res: Response, what: string): Promise<Response> {
  if (!res.ok) throw new Error(`${what} failed: ${res.status} ${(await res.text()).slice(0, 200)}`);
  return res;
}

/** A URL (and token) that uploads exactly this object once, valid for two hours. */
export async function signUpload(cfg: StorageAccess, bucket: string, path: string): Promise<{ signed_url: string; token: string }> {
  const res = await ok(await call(cfg, "POST", `/object/upload/sign/${bucket}/${encodePath(path)}`, {}), `signing an upload to ${path}`);
  const { url, token } = (await res.json()) as { url: string; token: string };
  return { signed_url: `${cfg.url}/storage/v1${url}`, token };
}

/** A download URL; with `download`, served as an attachment under that file name. */
export async function signDownload(cfg: StorageAccess, bucket: string, path: string, expiresIn: number, download?: string): Promise<string> {
  const res = await ok(await call(cfg, "POST", `/object/sign/${bucket}/${encodePath(path)}`, { expiresIn }), `signing ${path}`);
  const { signedURL } = (await res.json()) as { signedURL: string };
  const url = `${cfg.url}/storage/v1${signedURL}`;
  return download === undefined ? url : `${url}&download=${encodeURIComponent(download)}`;
}

/** The object's bytes, refused past maxBytes. */
export async function readObject(cfg: StorageAccess, bucket: string, path: string, maxBytes: number): Promise<Uint8Array | null> {
  const res = await call(cfg, "GET", `/object/authenticated/${bucket}/${encodePath(path)}`);
  if (res.status === 404 || res.status === 400) {
    await res.body?.cancel();
    return null;
  }
  await ok(res, `reading ${path}`);
  if (Number(res.headers.get("content-length") ?? 0) > maxBytes) {
    await res.body?.cancel();
    throw new Error(`${path} is larger than ${maxBytes} bytes`);
  }
  const bytes = new Uint8Array(await res.arrayBuffer());
  if (bytes.length > maxBytes) throw new Error(`${path} is larger than ${maxBytes} bytes`);
  return bytes;
}

/** Copies an object within its bucket, or into `toBucket` (Storage copies across buckets server-side). */
export async function copyObject(cfg: StorageAccess, bucket: string, from: string, to: string, toBucket = bucket): Promise<void> {
  const body = { bucketId: bucket, sourceKey: from, destinationKey: to, ...(toBucket === bucket ? {} : { destinationBucket: toBucket }) };
  await ok(await call(cfg, "POST", "/object/copy", body), `copying ${bucket}/${from}`);
}

/** Writes (or replaces) an object with the service key: files the worker makes (exports, archives). */
export async function putObject(cfg: StorageAccess, bucket: string, path: string, body: Uint8Array, contentType: string): Promise<void> {
  const res = await (cfg.fetch ?? fetch)(`${cfg.url}/storage/v1/object/${bucket}/${encodePath(path)}`, {
    method: "POST",
    headers: { authorization: `Bearer ${cfg.serviceRoleKey}`, apikey: cfg.serviceRoleKey, "content-type": contentType, "x-upsert": "true" },
    body: body as BodyInit,
    signal: AbortSignal.timeout(120_000),
  });
  await ok(res, `storing ${bucket}/${path}`);
  await res.body?.cancel();
}

export async function removeObjects(cfg: StorageAccess, bucket: string, paths: string[]): Promise<void> {
  if (paths.length === 0) return;
  await ok(await call(cfg, "DELETE", `/object/${bucket}`, { prefixes: paths }), `removing ${paths.length} objects`);
}
