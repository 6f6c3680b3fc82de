// The TUS data store: @tus/file-store under `<root>/tus`, with each upload's file named by a
// hash of its id. Upload ids are `<bucket>/<key>/<version>` and keys may hold any character the
// key rules allow, so the raw id never becomes a path.
import { createHash } from "node:crypto";
import fsp from "node:fs/promises";
import path from "node:path";
import type stream from "node:stream";
import { FileStore } from "@tus/file-store";
import type { Upload } from "@tus/server";

function fileName(id: string): string {
  return createHash("sha256").update(id).digest("hex");
}

export class TusFileStore extends FileStore {
  constructor(directory: string, expirationPeriodInMilliseconds: number) {
    super({ directory, expirationPeriodInMilliseconds });
  }

  /** The upload's bytes on disk. */
  filePath(id: string): string {
    return path.join(this.directory, fileName(id));
  }

  override async create(file: Upload): Promise<Upload> {
    const id = file.id;
    file.id = fileName(id);
    try {
      await super.create(file);
    } finally {
      file.id = id;
    }
    return file;
  }

  override read(id: string) {
    return super.read(fileName(id));
  }

  override remove(id: string): Promise<void> {
    return super.remove(fileName(id));
  }

  override write(readable: stream.Readable, id: string, offset: number): Promise<number> {
    return super.write(readable, fileName(id), offset);
  }

  override async getUpload(id: string): Promise<Upload> {
    const upload = await super.getUpload(fileName(id));
    upload.id = id;
    return upload;
  }

  override declareUploadLength(id: string, length: number): Promise<void> {
    return super.declareUploadLength(fileName(id), length);
  }

  /**
   * Drops uploads past their expiry, finished or not: a finished upload's bytes already live on
   * as an object (hard-linked), so only the upload's own name for them goes.
   */
  override async deleteExpired(): Promise<number> {
    const expiry = this.getExpiration();
    if (expiry <= 0) return 0;
    let removed = 0;
    for (const entry of await fsp.readdir(this.directory)) {
      if (!entry.endsWith(".json")) continue;
      const key = entry.slice(0, -".json".length);
      const info = (await this.configstore.get(key)) as { creation_date?: string } | undefined;
      if (!info?.creation_date || Date.now() < new Date(info.creation_date).getTime() + expiry) continue;
      await fsp.rm(path.join(this.directory, key), { force: true });
      await fsp.rm(path.join(this.directory, entry), { force: true });
      removed++;
    }
    return removed;
  }
}
