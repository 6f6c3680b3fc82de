// What every Stripe object family's handler shares: the apply context, the prefetched Stripe
// objects, the object lock, the outbox, the watermark, and how an org is resolved.
import { sql } from "kysely";
import type Stripe from "stripe";
import type { Tx } from "../../db/client.ts";

export interface Ctx {
  tx: Tx;
  stripe: Stripe;
  event: Stripe.Event;
  fetched: Prefetched;
}

export type Applied = {
  status: "processed" | "ignored";
  object_id: string | null;
  org_id: string | null;
  stale?: boolean;
  reason?: IgnoredReason;
};

export type IgnoredReason =
  | "unhandled_type"
  | "object_missing"
  | "customer_not_linked"
  | "org_mismatch"
  | "org_not_found"
  | "no_customer";

export const ignored = (object_id: string | null, reason: IgnoredReason): Applied =>
  ({ status: "ignored", object_id, org_id: null, reason });

export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
export const iso = (s: number | null | undefined) => (s == null ? null : new Date(s * 1000).toISOString());

// ---------------------------------------------------------------------------
// Prefetched Stripe objects
// ---------------------------------------------------------------------------

/**
 * Thrown inside the apply transaction when it needs a Stripe object it does not have: the
 * transaction rolls back, the caller fetches the object (no transaction open) and applies again.
 */
export class NeedFetch extends Error {
  constructor(readonly key: string, readonly load: () => Promise<unknown>) {
    super(`needs ${key} from Stripe`);
  }
}

interface Entry {
  value: unknown;
  /** The mirror row's updated_at (text) read just before the fetch; undefined when not tracked. */
  version?: string | null;
}

/**
 * Stripe objects fetched before the apply transaction. Reads are synchronous: a missing one
 * throws NeedFetch, so no HTTP call can ever happen while the transaction is open.
 */
export class Prefetched {
  private readonly entries = new Map<string, Entry>();

  has(key: string): boolean {
    return this.entries.has(key);
  }

  set(key: string, value: unknown, version?: string | null) {
    this.entries.set(key, { value, version });
  }

  get<T>(key: string, load: () => Promise<T>): T {
    const e = this.entries.get(key);
    if (!e) throw new NeedFetch(key, load);
    return e.value as T;
  }

  /**
   * The object, provided it was fetched after its mirror row was last written. When another
   * delivery wrote the row after this one read it (so may have applied a newer fetch), the
   * object is dropped and fetched again: an older fetch never overwrites a newer one.
   */
  fresh<T>(key: string, load: () => Promise<T>, rowVersion: string | null): T {
    const value = this.get(key, load);
    const seen = this.entries.get(key)!.version;
    if (seen !== undefined && seen !== rowVersion) {
      this.entries.delete(key);
      throw new NeedFetch(key, load);
    }
    return value;
  }
}

/** The mirror table whose row versions a prefetched key is checked against. */
export function mirrorOf(key: string): { table: "subscriptions" | "invoices"; id: string } | null {
  const i = key.indexOf(":");
  const kind = key.slice(0, i);
  const id = key.slice(i + 1);
  if (kind === "subscription") return { table: "subscriptions", id };
  if (kind === "invoice") return { table: "invoices", id };
  return null;
}

export const subscriptionKey = (id: string) => `subscription:${id}`;
export const invoiceKey = (id: string) => `invoice:${id}`;

/** The refetched subscription (see Prefetched.fresh); rowVersion is its mirror row's updated_at::text. */
export const freshSubscription = (ctx: Ctx, id: string, rowVersion: string | null) =>
  ctx.fetched.fresh<Stripe.Subscription>(subscriptionKey(id), () => ctx.stripe.subscriptions.retrieve(id), rowVersion);

export const freshInvoice = (ctx: Ctx, id: string, rowVersion: string | null) =>
  ctx.fetched.fresh<Stripe.Invoice>(invoiceKey(id), () => ctx.stripe.invoices.retrieve(id), rowVersion);

// ---------------------------------------------------------------------------
// Locks, outbox, watermarks
// ---------------------------------------------------------------------------

/** Serializes work on one Stripe object across concurrent deliveries, until commit. */
export async function lockObject(tx: Tx, id: string) {
  await sql`select pg_advisory_xact_lock(hashtextextended(${`stripe:${id}`}, 0))`.execute(tx);
}

export async function emit(tx: Tx, orgId: string, type: string, subjectKind: string, subjectId: string, payload: Record<string, unknown>) {
  await sql`select private.emit_event(${orgId}::uuid, ${type}, ${subjectKind}, ${subjectId}, ${JSON.stringify(payload)}::jsonb)`.execute(tx);
}

export type Watermarked = { watermark_created: number | string; watermark_event_id: string };

/**
 * Whether the event is older than the row's watermark. Only a strictly older second is stale:
 * Stripe's event ids are not ordered, so within one second the id cannot tell which change
 * came last. The state is refetched after the row's last write, so applying it is safe anyway.
 */
export function isStale(event: Stripe.Event, row: Watermarked | undefined) {
  return row !== undefined && event.created < Number(row.watermark_created);
}

/** The new watermark: the larger (created, event id) of the row's and the event's. */
export function nextWatermark(event: Stripe.Event, row: Watermarked | undefined): [number, string] {
  if (!row) return [event.created, event.id];
  const wm = Number(row.watermark_created);
  if (event.created > wm) return [event.created, event.id];
  return [wm, event.id > row.watermark_event_id ? event.id : row.watermark_event_id];
}

// ---------------------------------------------------------------------------
// Which org an event belongs to
// ---------------------------------------------------------------------------

export type Resolved = { org_id: string } | { org_id: null; reason: IgnoredReason };

/**
 * The org a Stripe customer belongs to.
 *   * A linked customer (billing.customers, written by our checkout) belongs to its org.
 *   * An unlinked one is trusted only when the event names an org (client_reference_id or
 *     metadata org_id) and the customer's own metadata names the same, existing org; the link
 *     is then recorded. Otherwise the event is ignored with the reason: anyone can put any org
 *     id into a checkout's client_reference_id, but only we (and the account's admins) write a
 *     customer's metadata.
 * `hints` are every org id the event carries; any that disagrees with the customer refuses it.
 */
export async function resolveOrg(ctx: Ctx, customerId: string | null, hints: (string | null | undefined)[]): Promise<Resolved> {
  const { tx } = ctx;
  if (customerId) {
    const { rows } = await sql<{ org_id: string }>`select org_id from billing.customers where stripe_customer_id = ${customerId}`.execute(tx);
    if (rows[0]) return { org_id: rows[0].org_id };
  }
  if (!customerId) return { org_id: null, reason: "no_customer" };
  const named = hints.filter((h): h is string => typeof h === "string" && h.length > 0);
  if (named.length === 0) return { org_id: null, reason: "customer_not_linked" };
  const customer = ctx.fetched.get<Stripe.Customer | Stripe.DeletedCustomer>(`customer:${customerId}`,
    () => ctx.stripe.customers.retrieve(customerId));
  if ("deleted" in customer && customer.deleted) return { org_id: null, reason: "customer_not_linked" };
  const own = (customer as Stripe.Customer).metadata?.org_id;
  if (!own || !UUID.test(own)) return { org_id: null, reason: "customer_not_linked" };
  if (named.some((h) => h.toLowerCase() !== own.toLowerCase())) return { org_id: null, reason: "org_mismatch" };
  const { rows } = await sql<{ id: string }>`select id from public.orgs where id = ${own}::uuid`.execute(tx);
  if (!rows[0]) return { org_id: null, reason: "org_not_found" };
  await sql`insert into billing.customers (org_id, stripe_customer_id, email)
            values (${own}::uuid, ${customerId}, ${(customer as Stripe.Customer).email ?? null})
            on conflict do nothing`.execute(tx);
  return { org_id: rows[0].id };
}
