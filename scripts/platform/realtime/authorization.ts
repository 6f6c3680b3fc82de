// Private-channel authorization, as Realtime runs it: RLS on realtime.messages decides, asked as
// the client (role and claims from its JWT, `realtime.topic` = the sub-topic, the upgrade's x-*
// headers as request.headers). Reads are probed with realtime.can_receive (SELECT policies),
// writes with realtime.can_send (INSERT policies); both roll their probe back, and the
// surrounding transaction is rolled back too, so nothing a check does is ever committed.
import type pg from "pg";

export interface AuthContext {
  claims: Record<string, unknown>;
  /** The WebSocket upgrade's x-* headers (all headers for the REST API). */
  headers: Record<string, string>;
}

export type Extension = "broadcast" | "presence";

async function probe(pool: pg.Pool, ctx: AuthContext, topic: string, checks: { fn: "can_receive" | "can_send"; ext: Extension }[]): Promise<boolean[]> {
  const c = await pool.connect();
  try {
    await c.query("begin");
    await c.query("select set_config('request.headers', $1, true)", [JSON.stringify(ctx.headers)]);
    const cols = checks.map((k, i) => `realtime.${k.fn}($1, $2, $${i + 3}) as c${i}`).join(", ");
    const { rows } = await c.query(`select ${cols}`, [JSON.stringify(ctx.claims), topic, ...checks.map((k) => k.ext)]);
    return checks.map((_, i) => rows[0][`c${i}`] === true);
  } finally {
    await c.query("rollback").catch(() => {});
    c.release();
  }
}

export interface ReadPolicies {
  broadcast: boolean;
  /** null when presence was not asked about (presence disabled at join). */
  presence: boolean | null;
}

/** The join-time read check; presence read only when presence is enabled. A policy that raises denies. */
export async function readPolicies(pool: pg.Pool, ctx: AuthContext, topic: string, withPresence: boolean, log: (line: string) => void): Promise<ReadPolicies> {
  try {
    const checks: { fn: "can_receive"; ext: Extension }[] = [{ fn: "can_receive", ext: "broadcast" }];
    if (withPresence) checks.push({ fn: "can_receive", ext: "presence" });
    const [broadcast, presence] = await probe(pool, ctx, topic, checks);
    return { broadcast, presence: withPresence ? presence : null };
  } catch (err) {
    log(`RlsPolicyError on ${topic}: ${(err as Error).message}`);
    return { broadcast: false, presence: withPresence ? false : null };
  }
}

export async function canRead(pool: pg.Pool, ctx: AuthContext, topic: string, ext: Extension, log: (line: string) => void): Promise<boolean> {
  try {
    return (await probe(pool, ctx, topic, [{ fn: "can_receive", ext }]))[0];
  } catch (err) {
    log(`RlsPolicyError on ${topic}: ${(err as Error).message}`);
    return false;
  }
}

/** The lazy write check on a first send or track. */
export async function canWrite(pool: pg.Pool, ctx: AuthContext, topic: string, ext: Extension, log: (line: string) => void): Promise<boolean> {
  try {
    return (await probe(pool, ctx, topic, [{ fn: "can_send", ext }]))[0];
  } catch (err) {
    log(`RlsPolicyError on ${topic}: ${(err as Error).message}`);
    return false;
  }
}
