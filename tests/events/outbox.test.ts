// The outbox: events are written in the caller's transaction, match the catalog, and the
// dispatcher hands each to every consumer exactly once in effect.
import { sql } from "kysely";
import { afterAll, describe, expect, it, vi } from "vitest";
import { createDb } from "../../functions/_shared/db/client.ts";
import { EVENT_PAYLOADS, EVENT_TYPES, type OutboxEvent } from "../../functions/_shared/events/catalog.ts";
import { dispatchBatch, dispatchPending, type EventConsumer, OUTBOX_PARTITIONS } from "../../functions/_shared/events/dispatcher.ts";
import { admin, as, createTeam, createUser, expectSqlError, rpc, select, stack } from "../helpers/db.ts";
import { waitFor } from "../helpers/wait.ts";

const { db, pool } = createDb(stack.dbUrl, OUTBOX_PARTITIONS + 1);
// The one wait for the stack's worker has a generous budget (60 s); the test asserts the outcome.
vi.setConfig({ testTimeout: 180_000 });
afterAll(() => pool.end());

async function eventsOf(orgId: string, type?: string) {
  const { rows } = await admin.query(
    `select * from notify.events where org_id = $1 ${type ? "and type = $2" : ""} order by seq`,
    type ? [orgId, type] : [orgId],
  );
  return rows;
}

describe("emitting", () => {
  it("the SQL catalog and the zod payload schemas list the same event types", async () => {
    const { rows } = await admin.query("select type from notify.event_types order by type");
    expect(rows.map((r) => r.type)).toEqual([...EVENT_TYPES].sort());
  });

  it("every tenancy action writes its event, with actor and a payload that matches the catalog", async () => {
    const team = await createTeam();
    const invitee = await createUser();
    await rpc(team.owner, "update_org", { p_org_id: team.orgId, p_name: "Renamed" });
    const [inv] = await rpc<{ token: string }>(team.admin, "invite_member", { p_org_id: team.orgId, p_email: invitee.email });
    await rpc(invitee, "accept_invitation", { p_token: inv.token });
    await rpc(team.admin, "set_member_role", { p_org_id: team.orgId, p_user_id: invitee.id, p_role: "viewer" });
    await rpc(team.admin, "remove_member", { p_org_id: team.orgId, p_user_id: invitee.id });
    const [key] = await rpc<{ api_key_id: string }>(team.owner, "create_api_key", { p_org_id: team.orgId, p_name: "k", p_scopes: ["content.read"] });
    await rpc(team.owner, "revoke_api_key", { p_api_key_id: key.api_key_id });

    const events = await eventsOf(team.orgId);
    expect(events.map((e) => e.type)).toEqual([
      "org.created", "member.joined", // create_org
      "member.joined", "member.joined", "member.joined", // createTeam's admin, member, viewer
      "org.updated", "member.invited", "member.joined", "member.role_changed", "member.removed",
      "api_key.created", "api_key.revoked",
    ]);
    for (const e of events) {
      expect(EVENT_PAYLOADS[e.type as keyof typeof EVENT_PAYLOADS].safeParse(e.payload).success, e.type).toBe(true);
    }
    const byType = (t: string) => events.filter((e) => e.type === t).at(-1);
    expect(byType("member.invited").actor_user_id).toBe(team.admin.id);
    expect(byType("member.joined").actor_user_id).toBe(invitee.id);
    expect(byType("org.updated").payload.changed).toEqual(["name"]);
    expect(JSON.stringify(byType("api_key.created").payload)).not.toMatch(/secret|hash/);
  });

  it("and the rest of them: transfer_ownership, revoke_invitation and leave_org write exactly their events; delete_org takes the org's events with it", async () => {
    const team = await createTeam();
    const start = (await eventsOf(team.orgId)).length;
    await rpc(team.owner, "transfer_ownership", { p_org_id: team.orgId, p_new_owner: team.admin.id });
    const [inv] = await rpc<{ invitation_id: string }>(team.admin, "invite_member", { p_org_id: team.orgId, p_email: "revoked@test.local" });
    // A revocation has no event type of its own (the audit log records it).
    await rpc(team.admin, "revoke_invitation", { p_invitation_id: inv.invitation_id });
    await rpc(team.viewer, "leave_org", { p_org_id: team.orgId });

    const events = (await eventsOf(team.orgId)).slice(start);
    expect(events.map((e) => [e.type, e.actor_user_id, e.subject_id])).toEqual([
      ["member.role_changed", team.owner.id, team.admin.id],
      ["member.role_changed", team.owner.id, team.owner.id],
      ["member.invited", team.admin.id, inv.invitation_id],
      ["member.removed", team.viewer.id, team.viewer.id],
    ]);
    for (const e of events) {
      expect(EVENT_PAYLOADS[e.type as keyof typeof EVENT_PAYLOADS].safeParse(e.payload).success, e.type).toBe(true);
    }
    expect(events[0].payload).toEqual({ user_id: team.admin.id, old_role: "admin", new_role: "owner" });
    expect(events[1].payload).toEqual({ user_id: team.owner.id, old_role: "owner", new_role: "admin" });
    expect(events[3].payload).toEqual({ user_id: team.viewer.id, role: "viewer" });

    // The org is gone, and its outbox with it: there is no org.deleted event to hand on.
    await rpc(team.admin, "delete_org", { p_org_id: team.orgId, p_confirm_slug: team.slug });
    expect(await eventsOf(team.orgId)).toEqual([]);
    expect((await admin.query("select count(*)::int as n from notify.events where subject_id = $1", [team.orgId])).rows[0].n).toBe(0);
  });

  it("an event exists only if its change committed", async () => {
    const team = await createTeam();
    const before = (await eventsOf(team.orgId)).length;
    await expectSqlError(
      as(team.owner, async (c) => {
        await c.query("select public.update_org($1, p_name => 'Doomed')", [team.orgId]);
        throw Object.assign(new Error("client gave up"), { code: "XXTST" });
      }),
      "XXTST",
    );
    expect((await eventsOf(team.orgId)).length).toBe(before);
  });

  it("personal orgs emit nothing", async () => {
    const user = await createUser();
    const [org] = await select<{ id: string }>(user, "select id from public.my_orgs");
    expect(await eventsOf(org.id)).toEqual([]);
  });

  it("clients cannot write events or call emit_event", async () => {
    const team = await createTeam();
    await expectSqlError(
      as(team.owner, (c) => c.query("select private.emit_event($1::uuid, 'org.updated', 'org', $2::text, '{}')", [team.orgId, team.orgId])),
      "42501",
    );
    await expectSqlError(
      as(team.owner, (c) => c.query("insert into notify.events (org_id, type, schema_version, subject_kind, subject_id) values ($1, 'org.updated', 1, 'org', 'x')", [team.orgId])),
      "42501",
    );
  });

  it("an unknown event type is refused with 22023", async () => {
    const team = await createTeam();
    await expectSqlError(admin.query("select private.emit_event($1, 'no.such', 'org', 'x', '{}')", [team.orgId]), "22023");
  });
});

describe("activity feed", () => {
  it("members read their org's events; sensitive ones only with members.manage; strangers nothing", async () => {
    const team = await createTeam();
    const stranger = await createUser();
    await rpc(team.admin, "invite_member", { p_org_id: team.orgId, p_email: "someone@else.test" });
    const types = async (who: Parameters<typeof select>[0]) =>
      (await select<{ type: string }>(who, "select type from notify.activity where org_id = $1", [team.orgId])).map((r) => r.type);
    expect(await types(team.admin)).toContain("member.invited");
    expect(await types(team.viewer)).toContain("member.joined");
    expect(await types(team.viewer)).not.toContain("member.invited");
    expect(await types(stranger)).toEqual([]);
  });
});

describe("dispatching", () => {
  // The suite's own worker dispatches continuously. These tests write events held back an hour
  // (so the worker leaves them alone) and dispatch them with a clock two hours ahead.
  const later = () => new Date(Date.now() + 2 * 3600_000);

  function recorder(name: string, fail?: (e: OutboxEvent) => boolean): EventConsumer & { seen: string[] } {
    const seen: string[] = [];
    return {
      name,
      seen,
      async handle(tx, e) {
        await sql`select 1`.execute(tx);
        if (fail?.(e)) throw new Error("consumer down");
        seen.push(e.id);
      },
    };
  }

  async function heldBackEvent(orgId: string): Promise<string> {
    const c = await admin.connect();
    try {
      await c.query("begin");
      const { rows } = await c.query("select private.emit_event($1::uuid, 'org.updated', 'org', $2::text, $3) as id", [
        orgId,
        orgId,
        JSON.stringify({ name: "n", slug: "s", require_mfa: false, changed: [] }),
      ]);
      await c.query("update notify.events set next_dispatch_at = now() + interval '1 hour' where id = $1", [rows[0].id]);
      await c.query("commit");
      return rows[0].id;
    } finally {
      c.release();
    }
  }

  const receipts = async (id: string) =>
    (await admin.query("select consumer from notify.consumer_receipts where event_id = $1 order by 1", [id])).rows.map((r) => r.consumer);

  it("each consumer handles an event once; a failing one is retried later without repeating the others", async () => {
    const team = await createTeam();
    const id = await heldBackEvent(team.orgId);
    const ok = recorder("test-ok");
    let down = true;
    const flaky = recorder("test-flaky", (e) => e.id === id && down);

    await dispatchBatch(db, [ok, flaky], { now: later(), orgId: team.orgId });
    expect(ok.seen).toContain(id);
    expect(await receipts(id)).toEqual(["test-ok"]);
    const { rows } = await admin.query(
      "select dispatched_at, dispatch_attempts, last_error, next_dispatch_at > now() + interval '1 hour' as backed_off from notify.events where id = $1",
      [id],
    );
    expect(rows[0]).toMatchObject({ dispatched_at: null, dispatch_attempts: 1, backed_off: true });
    expect(rows[0].last_error).toMatch(/test-flaky: consumer down/);

    down = false;
    await dispatchBatch(db, [ok, flaky], { now: new Date(Date.now() + 3 * 3600_000), orgId: team.orgId });
    expect(ok.seen.filter((x) => x === id)).toHaveLength(1); // not repeated
    expect(flaky.seen.filter((x) => x === id)).toHaveLength(1);
    expect(await receipts(id)).toEqual(["test-flaky", "test-ok"]);
    expect((await admin.query("select dispatched_at from notify.events where id = $1", [id])).rows[0].dispatched_at).not.toBeNull();
  });

  it("a consumer failing for days backs off at most an hour and never breaks the batch", async () => {
    const team = await createTeam();
    const id = await heldBackEvent(team.orgId);
    await admin.query("update notify.events set dispatch_attempts = 40 where id = $1", [id]);
    const down = recorder("test-down", (e) => e.id === id);
    const at = later();
    await dispatchBatch(db, [down], { now: at, orgId: team.orgId });
    const { rows } = await admin.query(
      "select dispatch_attempts, extract(epoch from next_dispatch_at - $2::timestamptz)::int as wait from notify.events where id = $1",
      [id, at.toISOString()],
    );
    expect(rows[0]).toEqual({ dispatch_attempts: 41, wait: 3600 });
  });

  it("a dispatcher killed mid-transaction leaves the event pending, and it is delivered again", async () => {
    const team = await createTeam();
    const id = await heldBackEvent(team.orgId);
    // The consumer reports its backend and then stalls; the test kills that backend, as an
    // OOM-killed or redeployed worker would lose its connection.
    let pid = 0;
    const stalled: EventConsumer = {
      name: "test-once",
      async handle(tx, e) {
        if (e.id !== id) return;
        pid = (await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(tx)).rows[0].pid;
        await sql`select pg_sleep(30)`.execute(tx);
      },
    };
    const dying = dispatchBatch(db, [stalled], { now: later(), orgId: team.orgId });
    while (!pid) await new Promise((r) => setTimeout(r, 20));
    await admin.query("select pg_terminate_backend($1)", [pid]);
    await expect(dying).rejects.toThrow();
    expect(await receipts(id)).toEqual([]);
    expect((await admin.query("select dispatched_at, dispatch_attempts from notify.events where id = $1", [id])).rows[0])
      .toEqual({ dispatched_at: null, dispatch_attempts: 0 });

    const again = recorder("test-once");
    await dispatchBatch(db, [again], { now: later(), orgId: team.orgId });
    expect(again.seen).toContain(id);
    expect(await receipts(id)).toEqual(["test-once"]);
  });

  it("many orgs are dispatched side by side, and each consumer sees every org's events once, in emit order", async () => {
    // Twelve orgs, eight held-back events each, written interleaved across the orgs.
    const orgIds: string[] = [];
    for (let i = 0; i < 12; i++) {
      const { rows } = await admin.query(
        "insert into public.orgs (slug, name, kind) values ($1, $1, 'team') returning id", [`par-${crypto.randomUUID().slice(0, 12)}`]);
      orgIds.push(rows[0].id);
    }
    const { rows: partitions } = await admin.query(
      "select count(distinct private.outbox_partition(id))::int as n from unnest($1::uuid[]) id", [orgIds]);
    expect(partitions[0].n).toBeGreaterThan(1);
    const emitted = new Map<string, number[]>(orgIds.map((o) => [o, []]));
    const c = await admin.connect();
    try {
      for (let round = 0; round < 8; round++) {
        await c.query("begin");
        for (const orgId of orgIds) {
          const { rows: [{ id }] } = await c.query("select private.emit_event($1::uuid, 'org.updated', 'org', $1::text, $2) as id",
            [orgId, JSON.stringify({ name: "n", slug: "s", require_mfa: false, changed: [] })]);
          const { rows } = await c.query("select seq from notify.events where id = $1", [id]);
          emitted.get(orgId)!.push(Number(rows[0].seq));
        }
        await c.query("update notify.events set next_dispatch_at = now() + interval '1 hour' where org_id = any ($1) and type = 'org.updated'", [orgIds]);
        await c.query("commit");
      }
    } catch (err) {
      await c.query("rollback");
      throw err;
    } finally {
      c.release();
    }

    // One consumer event by event, one in batches; both note who is in flight at once.
    let inFlight = 0;
    let maxInFlight = 0;
    const seenBy = { single: new Map<string, number[]>(), batch: new Map<string, number[]>() };
    const note = async (tx: Parameters<EventConsumer["handle"]>[0], into: Map<string, number[]>, events: OutboxEvent[]) => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      try {
        await sql`select pg_sleep(0.02)`.execute(tx);
        for (const e of events.filter((x) => x.type === "org.updated")) into.set(e.org_id, [...(into.get(e.org_id) ?? []), Number(e.seq)]);
      } finally {
        inFlight--;
      }
    };
    const single: EventConsumer = { name: "test-order-single", handle: (tx, e) => note(tx, seenBy.single, [e]) };
    const batch: EventConsumer = {
      name: "test-order-batch",
      handle: (tx, e) => note(tx, seenBy.batch, [e]),
      handleBatch: (tx, es) => note(tx, seenBy.batch, es),
    };
    const result = await dispatchPending(db, [single, batch], { now: later(), orgIds });
    // The orgs' org.created events too, unless the suite's worker got to them first.
    expect(result.failed).toBe(0);
    expect(result.events).toBeGreaterThanOrEqual(96);
    expect(maxInFlight).toBeGreaterThan(1);
    for (const orgId of orgIds) {
      expect(seenBy.single.get(orgId), orgId).toEqual(emitted.get(orgId));
      expect(seenBy.batch.get(orgId), orgId).toEqual(emitted.get(orgId));
    }
    const { rows } = await admin.query(
      "select count(*)::int as n from notify.events where org_id = any ($1) and type = 'org.updated' and dispatched_at is null", [orgIds]);
    expect(rows[0].n).toBe(0);
  });

  it("a consumer's failing batch falls back to event by event: only the bad event waits", async () => {
    const team = await createTeam();
    const ids = [await heldBackEvent(team.orgId), await heldBackEvent(team.orgId), await heldBackEvent(team.orgId)];
    const seen: string[] = [];
    const picky: EventConsumer = {
      name: "test-picky",
      async handle(tx, e) {
        await sql`select 1`.execute(tx);
        if (e.id === ids[1]) throw new Error("bad event");
        seen.push(e.id);
      },
      async handleBatch(tx, es) {
        await sql`select 1`.execute(tx);
        if (es.some((e) => e.id === ids[1])) throw new Error("bad event");
        seen.push(...es.map((e) => e.id));
      },
    };
    await dispatchBatch(db, [picky], { now: later(), orgId: team.orgId });
    // (The team's own events may be in the batch too, if the suite's worker has not got to them.)
    expect(seen.filter((id) => ids.includes(id))).toEqual([ids[0], ids[2]]);
    expect(await receipts(ids[0])).toEqual(["test-picky"]);
    expect(await receipts(ids[1])).toEqual([]);
    const { rows } = await admin.query("select id, dispatched_at is not null as done, last_error from notify.events where id = any ($1)", [ids]);
    const byId = new Map(rows.map((r) => [r.id, r]));
    expect(byId.get(ids[0])).toMatchObject({ done: true, last_error: null });
    expect(byId.get(ids[1])).toMatchObject({ done: false, last_error: "test-picky: bad event" });
    expect(byId.get(ids[2])).toMatchObject({ done: true });
  });

  it("the suite's worker dispatches a real event to the realtime consumer, once", async () => {
    const team = await createTeam();
    await rpc(team.owner, "update_org", { p_org_id: team.orgId, p_name: "Dispatched" });
    const [{ id }] = (await eventsOf(team.orgId, "org.updated"));
    await waitFor(`event ${id} to be dispatched`, async () =>
      (await admin.query("select dispatched_at from notify.events where id = $1", [id])).rows[0].dispatched_at);
    const { rows } = await admin.query("select count(*)::int as n from notify.consumer_receipts where event_id = $1 and consumer = 'realtime'", [id]);
    expect(rows[0].n).toBe(1);
  });
});
