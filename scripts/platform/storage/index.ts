// Supabase Storage stand-in: the REST API storage-js calls and TUS resumable uploads, under
// /storage/v1 on the project port. It authorizes as the real server does (the caller's role
// and claims set in each transaction, so RLS on storage.objects and storage.buckets decides),
// keeps bytes under `<dataDir>/storage`, and answers with the real server's replies.
import type http from "node:http";
import type { PlatformContext } from "../context.ts";
import { ByteStore } from "./bytes.ts";
import { storageConfig } from "./config.ts";
import type { StorageDeps } from "./context.ts";
import { sendError } from "./errors.ts";
import { dispatch } from "./router.ts";
import { UrlSigner } from "./signing.ts";
import { createTusServer } from "./tus/server.ts";

export interface StorageServer {
  /** Handles every request under /storage/v1 (the path still carries the prefix). */
  handle(req: http.IncomingMessage, res: http.ServerResponse): void;
  close(): Promise<void>;
}

const PREFIX = "/storage/v1";

export async function createStorage(ctx: PlatformContext): Promise<StorageServer> {
  const config = storageConfig(ctx.dataDir);
  const store = new ByteStore(config.root);
  await store.init();
  const log = (line: string) => ctx.log("storage", line);
  const deps: StorageDeps = { pool: ctx.pool, store, config, signer: new UrlSigner(ctx.jwtSecret), verifier: ctx.verifier, log };
  const tus = createTusServer({ ...deps, publicUrl: ctx.publicUrl }, store);
  const inflight = new Set<Promise<void>>();

  return {
    handle(req, res) {
      const url = req.url ?? "/";
      const path = url.slice(PREFIX.length) || "/";
      const pathname = path.split("?")[0]!;
      const work = (
        pathname === "/upload/resumable" || pathname.startsWith("/upload/resumable/")
          ? tus.handle(req, res, url)
          : dispatch(deps, req, res, path)
      ).catch((err: unknown) => sendError(res, err, log));
      inflight.add(work);
      void work.finally(() => inflight.delete(work));
    },
    async close() {
      tus.close();
      // Let requests in flight finish their database work, but never wait on a stalled client.
      await Promise.race([Promise.allSettled([...inflight]), new Promise((r) => setTimeout(r, 2000).unref())]);
    },
  };
}
