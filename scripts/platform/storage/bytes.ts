// Where object bytes live: one immutable file per (bucket, key, version) under
// `<root>/objects`, named by a hash of bucket and key so that no key can reach outside the
// folder or collide with another after path normalisation. New bytes are streamed to
// `<root>/tmp` and renamed into place only once complete and within limits, so a reader never
// sees a partial object and a refused upload leaves nothing behind.
import { createHash, randomUUID } from "node:crypto";
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { Transform, type Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { ERRORS } from "./errors.ts";

/** A finished temp file, not yet an object. */
export interface ReceivedFile {
  tmp: string;
  size: number;
  /** Quoted md5, as S3 and the real server give it. */
  eTag: string;
}

/** `storage.objects.metadata` as the real server writes it. */
export interface ObjectMetadata {
  eTag: string;
  size: number;
  mimetype: string;
  cacheControl: string;
  lastModified: string;
  contentLength: number;
  httpStatusCode: number;
}

export function objectMetadata(file: { size: number; eTag: string }, mimetype: string, cacheControl: string): ObjectMetadata {
  return {
    eTag: file.eTag,
    size: file.size,
    mimetype,
    cacheControl,
    lastModified: new Date().toISOString(),
    contentLength: file.size,
    httpStatusCode: 200,
  };
}

export class ByteStore {
  readonly objects: string;
  readonly tmp: string;

  constructor(readonly root: string) {
    this.objects = path.join(root, "objects");
    this.tmp = path.join(root, "tmp");
  }

  async init(): Promise<void> {
    await fsp.mkdir(this.objects, { recursive: true });
    await fsp.mkdir(this.tmp, { recursive: true });
    // Leftovers of uploads cut short by a crash are never objects.
    for (const f of await fsp.readdir(this.tmp)) await fsp.rm(path.join(this.tmp, f), { force: true });
  }

  path(bucket: string, key: string, version: string): string {
    const h = createHash("sha256").update(bucket).update("\0").update(key).digest("hex");
    return path.join(this.objects, h.slice(0, 2), h, version.replace(/[^A-Za-z0-9-]/g, "_"));
  }

  /** Streams `source` into a temp file, refusing (and removing it) past `limit` bytes. */
  async receive(source: Readable, limit: number): Promise<ReceivedFile> {
    const tmp = path.join(this.tmp, randomUUID());
    const md5 = createHash("md5");
    let size = 0;
    const meter = new Transform({
      transform(chunk: Buffer, _enc, done) {
        size += chunk.length;
        if (size > limit) return done(ERRORS.EntityTooLarge());
        md5.update(chunk);
        done(null, chunk);
      },
    });
    try {
      await pipeline(source, meter, fs.createWriteStream(tmp));
    } catch (err) {
      await fsp.rm(tmp, { force: true });
      throw err;
    }
    return { tmp, size, eTag: `"${md5.digest("hex")}"` };
  }

  /** Moves a received file into place as the object's version. */
  async commit(file: ReceivedFile, bucket: string, key: string, version: string): Promise<void> {
    const dest = this.path(bucket, key, version);
    await fsp.mkdir(path.dirname(dest), { recursive: true });
    await fsp.rename(file.tmp, dest);
  }

  async discard(file: ReceivedFile): Promise<void> {
    await fsp.rm(file.tmp, { force: true });
  }

  /** Makes `source` (a finished file) also the object's version, without copying bytes. */
  async adopt(source: string, bucket: string, key: string, version: string): Promise<void> {
    const dest = this.path(bucket, key, version);
    await fsp.mkdir(path.dirname(dest), { recursive: true });
    try {
      await fsp.link(source, dest);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "EEXIST") return;
      const tmp = path.join(this.tmp, randomUUID());
      await fsp.copyFile(source, tmp);
      await fsp.rename(tmp, dest);
    }
  }

  async stat(bucket: string, key: string, version: string): Promise<fs.Stats | undefined> {
    try {
      return await fsp.stat(this.path(bucket, key, version));
    } catch {
      return undefined;
    }
  }

  read(bucket: string, key: string, version: string, range?: { start: number; end: number }): fs.ReadStream {
    return fs.createReadStream(this.path(bucket, key, version), range);
  }

  async remove(bucket: string, key: string, version: string): Promise<void> {
    const file = this.path(bucket, key, version);
    await fsp.rm(file, { force: true });
    // The per-key folder goes once its last version does.
    await fsp.rmdir(path.dirname(file)).catch(() => {});
  }

  /** Size and eTag of a finished file (TUS uploads are hashed once, at completion). */
  static async describe(file: string): Promise<{ size: number; eTag: string }> {
    const md5 = createHash("md5");
    let size = 0;
    for await (const chunk of fs.createReadStream(file)) {
      md5.update(chunk as Buffer);
      size += (chunk as Buffer).length;
    }
    return { size, eTag: `"${md5.digest("hex")}"` };
  }
}
