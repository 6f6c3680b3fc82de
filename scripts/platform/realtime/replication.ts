// Broadcast from the database, pushed and never polled, as the real server does it: a logical
// replication stream (pgoutput) of the INSERTs on realtime.messages, through the publication
// supabase_realtime_messages_publication, from a TEMPORARY slot made for this server start.
// Postgres drops the slot with the connection, so nothing is left behind, and a row is seen
// only once its transaction commits (authorization probes are rolled back and never are).
// If the stream breaks, a new slot is made after a second; rows committed in between are
// not replayed, as with the real server's temporary slot.
import { randomBytes } from "node:crypto";
import type pg from "pg";
import { LogicalReplicationService, PgoutputPlugin, type Pgoutput } from "pg-logical-replication";

export const PUBLICATION = "supabase_realtime_messages_publication";

export interface DbMessage {
  id: string;
  topic: string;
  event: string;
  payload: unknown;
  private: boolean;
}

export interface Replication {
  stop(): Promise<void>;
}

/** pgoutput on a slot it creates itself, on the replication connection that will stream it. */
class TemporarySlotPlugin extends PgoutputPlugin {
  constructor() {
    super({ protoVersion: 1, publicationNames: [PUBLICATION] });
  }

  async start(client: pg.Client, slotName: string, lastLsn: string) {
    await client.query(`CREATE_REPLICATION_SLOT ${slotName} TEMPORARY LOGICAL pgoutput NOEXPORT_SNAPSHOT`);
    return super.start(client, slotName, lastLsn);
  }
}

export async function startReplication(opts: {
  dbUrl: string;
  pool: pg.Pool;
  log: (line: string) => void;
  onMessage: (m: DbMessage) => void;
}): Promise<Replication> {
  // The real server creates the publication when it is missing; sql/platform normally has.
  await opts.pool.query(`do $$ begin
      if not exists (select from pg_publication where pubname = '${PUBLICATION}') then
        create publication ${PUBLICATION} for table realtime.messages with (publish = 'insert');
      end if;
    end $$`);

  let stopped = false;
  let service: LogicalReplicationService | undefined;
  let retry: NodeJS.Timeout | undefined;

  const onData = (lsn: string, m: Pgoutput.Message) => {
    if (m.tag === "insert" && m.relation.schema === "realtime" && m.relation.name.startsWith("messages")) {
      const row = m.new;
      if (typeof row.topic !== "string" || typeof row.id !== "string") return;
      opts.onMessage({
        id: row.id,
        topic: row.topic,
        event: typeof row.event === "string" ? row.event : "",
        payload: row.payload ?? null,
        private: row.private === true,
      });
    } else if (m.tag === "commit") {
      service?.acknowledge(lsn).catch(() => {});
    }
  };

  // Every second until the stream is back (the database may be restarting).
  const restart = () => {
    retry = setTimeout(() => {
      if (stopped) return;
      connect().catch((e: Error) => {
        opts.log(`replication restart failed: ${e.message}`);
        restart();
      });
    }, 1000);
  };

  const connect = (): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      const slot = `plinth_realtime_${randomBytes(6).toString("hex")}`;
      const s = new LogicalReplicationService(
        { connectionString: opts.dbUrl, application_name: "realtime_replication_connection" },
        { acknowledge: { auto: false, timeoutSeconds: 10 } },
      );
      service = s;
      let started = false;
      s.on("data", onData);
      s.on("heartbeat", (lsn: string, _ts: number, shouldRespond: boolean) => {
        if (shouldRespond) s.acknowledge(lsn).catch(() => {});
      });
      s.on("error", (err: Error) => {
        if (!stopped) opts.log(`replication error: ${err.message}`);
      });
      const broke = (err: unknown) => {
        if (stopped || service !== s) return;
        void s.destroy();
        if (!started) return reject(err instanceof Error ? err : new Error(String(err)));
        opts.log(`replication stream ended (${(err as Error)?.message ?? "closed"}); restarting on a new slot`);
        restart();
      };
      s.subscribe(new TemporarySlotPlugin(), slot).then(() => broke(new Error("stream closed")), broke);
      s.once("start", () => {
        started = true;
        opts.log(`replication streaming ${PUBLICATION} from temporary slot ${slot}`);
        resolve();
      });
    });

  await connect();
  return {
    async stop() {
      stopped = true;
      clearTimeout(retry);
      await service?.destroy();
    },
  };
}
