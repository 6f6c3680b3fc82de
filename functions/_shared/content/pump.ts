// Wakes compaction. Every live batch sends NOTIFY plinth_content '<document id>:<pending>' on
// commit; the long-lived worker turns that into a content.compact job per document at most
// every COMPACT_AFTER_MS (the queue is stately per document, so duplicates coalesce), or at once
// when the log is long. The content.sweep cron catches anything missed (and serves workers
// that only drain, which have no listener).
import pg from "pg";
import type { JobSender } from "../jobs/queue.ts";

export const COMPACT_AFTER_MS = 2_000;
export const COMPACT_AT_PENDING = 200;

export async function requestCompaction(jobs: JobSender, documentId: string, startAfterMs = 0): Promise<void> {
  const boss = await jobs.ready();
  await boss.send("content.compact", { document_id: documentId }, {
    singletonKey: documentId,
    ...(startAfterMs ? { startAfter: new Date(Date.now() + startAfterMs) } : {}),
  });
}

export function startContentPump(opts: { connectionString: string; jobs: JobSender; reconnectMs?: number }) {
  let listener: pg.Client | undefined;
  let stopped = false;
  const waiting = new Map<string, ReturnType<typeof setTimeout>>();

  const fire = (documentId: string) => {
    waiting.delete(documentId);
    requestCompaction(opts.jobs, documentId).catch(() => {});
  };

  const onNotify = (msg: { payload?: string }) => {
    const [documentId, pending] = (msg.payload ?? "").split(":");
    if (!/^[0-9a-f-]{36}$/.test(documentId)) return;
    if (Number(pending) >= COMPACT_AT_PENDING) {
      clearTimeout(waiting.get(documentId));
      fire(documentId);
    } else if (!waiting.has(documentId)) {
      waiting.set(documentId, setTimeout(() => fire(documentId), COMPACT_AFTER_MS));
    }
  };

  const listen = async () => {
    if (stopped) return;
    const client = new pg.Client({ connectionString: opts.connectionString });
    client.on("error", () => {});
    client.on("end", () => {
      if (listener === client) listener = undefined;
    });
    client.on("notification", onNotify);
    try {
      await client.connect();
      await client.query("listen plinth_content");
    } catch (err) {
      await client.end().catch(() => {});
      throw err;
    }
    listener = client;
  };

  // Reconnects a dropped listener; missed notifications are the sweep's to catch.
  const timer = setInterval(() => {
    if (!listener) listen().catch(() => {});
  }, opts.reconnectMs ?? 2_000);

  return {
    start: listen,
    stop: async () => {
      stopped = true;
      clearInterval(timer);
      for (const t of waiting.values()) clearTimeout(t);
      waiting.clear();
      await listener?.end().catch(() => {});
    },
  };
}
