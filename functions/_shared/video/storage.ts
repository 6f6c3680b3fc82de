// What the video module needs from the Storage API beyond content/storage.ts (signing, whole
// reads, writes, removal): reading byte ranges of an object (MP4 boxes of a finished
// video, without downloading its media). Service key, as any server calls it.
import type { StorageAccess } from "../content/storage.ts";

const encodePath = (path: string) => path.split("/").map(encodeURIComponent).join("/");
const auth = (cfg: StorageAccess) => ({ authorization: `Bearer ${cfg.serviceRoleKey}`, apikey: cfg.serviceRoleKey });

/** An object's size and a reader of byte ranges [start, end), or null when there is no such object. */
export async function rangeReader(cfg: StorageAccess, bucket: string, path: string): Promise<{ size: number; read: (start: number, end: number) => Promise<Uint8Array> } | null> {
  const f = cfg.fetch ?? fetch;
  const url = `${cfg.url}/storage/v1/object/authenticated/${bucket}/${encodePath(path)}`;
  const read = async (start: number, end: number) => {
    const res = await f(url, { headers: { ...auth(cfg), range: `bytes=${start}-${end - 1}` }, signal: AbortSignal.timeout(30_000) });
    if (res.status !== 206 && res.status !== 200) throw new Error(`reading ${path} failed: ${res.status}`);
    const bytes = new Uint8Array(await res.arrayBuffer());
    // A server that ignores Range sends the whole object: take the part asked for.
    return res.status === 200 ? bytes.subarray(start, end) : bytes;
  };
  const head = await f(url, { headers: { ...auth(cfg), range: "bytes=0-0" }, signal: AbortSignal.timeout(30_000) });
  if (head.status === 404 || head.status === 400) {
    await head.body?.cancel();
    return null;
  }
  const total = /\/(\d+)$/.exec(head.headers.get("content-range") ?? "")?.[1] ?? head.headers.get("content-length");
  await head.body?.cancel();
  if (!head.ok || total == null) throw new Error(`reading ${path} failed: ${head.status}`);
  return { size: Number(total), read };
}
