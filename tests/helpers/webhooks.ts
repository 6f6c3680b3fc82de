// Shared set-up for webhook tests: endpoints through the RPC, messages made directly for
// in-process delivery, and a controllable clock.
import { afterAll } from "vitest";
import { createDb } from "../../functions/_shared/db/client.ts";
import type { ScheduleDelivery } from "../../functions/_shared/webhooks/consumer.ts";
import type { DeliveryDeps } from "../../functions/_shared/webhooks/delivery.ts";
import { addMember, admin, createUser, rpc, stack, type TestUser } from "./db.ts";

const { db, pool } = createDb(stack.dbUrl, 4);
afterAll(() => pool.end());
export { db };

/** A member whose custom role grants webhooks.manage and nothing else (not members.manage). */
export async function addIntegrator(orgId: string): Promise<TestUser> {
  const integrator = await createUser();
  await admin.query(
    "insert into public.org_roles (org_id, key, name, rank, permissions) values ($1, 'integrator', 'Integrator', 25, '{webhooks.manage}')",
    [orgId],
  );
  await addMember(orgId, integrator, "integrator");
  return integrator;
}

export async function createEndpoint(who: TestUser, orgId: string, url: string, eventTypes: string[] = []) {
  const [row] = await rpc<{ endpoint_id: string; secret: string }>(who, "create_webhook_endpoint", {
    p_org_id: orgId, p_url: url, p_description: "test", p_event_types: eventTypes,
  });
  return row;
}

/** A message for an existing event of the org, made without a job, for in-process delivery. */
export async function createMessage(orgId: string, endpointId: string): Promise<string> {
  const { rows } = await admin.query(
    `insert into notify.webhook_messages (org_id, endpoint_id, event_id)
     select $1, $2, ev.id from notify.events ev
     where ev.org_id = $1 and not exists (select 1 from notify.webhook_messages m where m.endpoint_id = $2 and m.event_id = ev.id)
     order by ev.seq limit 1
     returning id`,
    [orgId, endpointId],
  );
  if (!rows[0]) throw new Error("no unused event left in this org");
  return rows[0].id;
}

export async function messageRow(id: string) {
  const { rows } = await admin.query("select * from notify.webhook_messages where id = $1", [id]);
  return rows[0];
}

export async function endpointRow(id: string) {
  const { rows } = await admin.query("select * from notify.webhook_endpoints where id = $1", [id]);
  return rows[0];
}

/** A clock that only moves when told to. */
export function testClock(start = new Date()) {
  let t = start.getTime();
  return {
    now: () => new Date(t),
    set: (d: Date) => void (t = d.getTime()),
    advance: (ms: number) => void (t += ms),
  };
}

/** Deps for in-process delivery: retries are recorded, not queued. */
export function inProcess(opts: Partial<DeliveryDeps> = {}) {
  const scheduled: { messageId: string; at?: Date }[] = [];
  const schedule: ScheduleDelivery = async (_tx, messageId, at) => void scheduled.push({ messageId, at });
  const clock = testClock();
  const deps: DeliveryDeps = { db, policy: { allowLoopback: true }, schedule, clock, random: () => 0.5, ...opts };
  return { deps, scheduled, clock };
}

export const HOUR = 3600_000;
export const DAY = 24 * HOUR;
