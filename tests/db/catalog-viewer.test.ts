// The viewer walk: for every table and view with org_id in an exposed schema, the lowest
// built-in role (viewer, content.read only) reads exactly where the map below says, and inserts,
// updates and deletes nothing in their own org. The map must list every relation, so a new
// table fails the walk until someone decides what a viewer may do with it; each "no" names the
// permission (or rule) the relation's SELECT policy needs, checked against the policy itself.
// The owner's same writes get past RLS where clients hold the privilege, so each denial is the
// viewer's role and not a missing grant.
import { randomUUID } from "node:crypto";
import { beforeAll, describe, expect, it } from "vitest";
import { gotrueClaims } from "../../scripts/lib/keys.ts";
import { commandsFor, isDenied, orgRelations, rowToCopy, walk, type Outcome, type RelationInfo } from "../helpers/catalog.ts";
import { admin } from "../helpers/db.ts";

const ACME = "a0000000-0000-4000-8000-00000000a000";
const victor = { id: "a0000000-0000-4000-8000-000000000004", email: "victor@acme.test" }; // acme's viewer
const alice = { id: "a0000000-0000-4000-8000-000000000001", email: "alice@acme.test" }; // acme's owner
const stranger = { id: randomUUID(), email: "stranger@walk.test" };

/**
 * What acme's viewer reads of acme's rows. `reads: true`: some row beyond what a stranger reads.
 * `reads: false`: none, because the SELECT policy needs `needs` (a permission, "own rows" for
 * the caller's own rows, or "no client reads" for relations clients cannot select at all), in
 * its own policy or in the policy of the table it is read `through`.
 */
type Expect = { reads: true } | { reads: false; needs: string; through?: string };
const VIEWER: Record<string, Expect> = {
  "ai.attempts": { reads: false, needs: "billing.manage" },
  "ai.available_presets": { reads: true },
  "ai.batch_progress": { reads: false, needs: "own rows" },
  "ai.batches": { reads: false, needs: "own rows" },
  "ai.jobs": { reads: false, needs: "own rows" },
  "ai.org_policies": { reads: true },
  "ai.org_presets": { reads: true },
  "ai.org_routes": { reads: true },
  "ai.usage_daily": { reads: false, needs: "own rows" },
  "billing.charges": { reads: false, needs: "billing.manage" },
  "billing.credit_accounts": { reads: true },
  "billing.credit_allocations": { reads: false, needs: "billing.manage" },
  "billing.credit_entries": { reads: false, needs: "billing.manage" },
  "billing.credit_grants": { reads: false, needs: "billing.manage" },
  "billing.credit_purchases": { reads: false, needs: "billing.manage" },
  "billing.credit_reservations": { reads: false, needs: "billing.manage" },
  "billing.customers": { reads: false, needs: "billing.manage" },
  "billing.disputes": { reads: false, needs: "billing.manage" },
  "billing.invoices": { reads: false, needs: "billing.manage" },
  "billing.subscriptions": { reads: true },
  "content.assets": { reads: true },
  "content.comment_threads": { reads: true },
  "content.comments": { reads: true },
  "content.doc_updates": { reads: true },
  "content.documents": { reads: true },
  "content.live_states": { reads: false, needs: "no client reads" },
  "content.shares": { reads: false, needs: "content.write" },
  "content.template_gallery": { reads: false, needs: "nothing seeded" },
  "content.versions": { reads: true },
  "deck.card_events": { reads: true },
  "deck.card_rollups": { reads: true },
  "deck.exports": { reads: true },
  "deck.generation_cards": { reads: false, needs: "own rows", through: "deck.generations" },
  "deck.generations": { reads: false, needs: "own rows" },
  "deck.revision_rollups": { reads: true },
  "deck.operations": { reads: true },
  "deck.templates": { reads: true },
  "deck.themes": { reads: true },
  "deck.view_revisions": { reads: true },
  "deck.views": { reads: true },
  "notify.activity": { reads: true },
  "notify.audit_log": { reads: false, needs: "org.manage" },
  "notify.events": { reads: true },
  "notify.notifications": { reads: false, needs: "own rows" },
  "notify.webhook_attempts": { reads: false, needs: "webhooks.manage" },
  "notify.webhook_endpoints": { reads: false, needs: "webhooks.manage" },
  "notify.webhook_messages": { reads: false, needs: "webhooks.manage" },
  "notify.webhook_secrets": { reads: false, needs: "webhooks.manage" },
  "public.api_keys": { reads: false, needs: "api_keys.manage" },
  "public.invitations": { reads: false, needs: "members.manage" },
  "public.org_members": { reads: true },
  "public.org_roles": { reads: true },
  "video.exports": { reads: false, needs: "own rows" },
  "video.job_runs": { reads: false, needs: "own rows", through: "video.jobs" },
  "video.jobs": { reads: false, needs: "own rows" },
  "video.uploads": { reads: true },
};

const relations = await orgRelations();
const name = (r: RelationInfo) => `${r.schema}.${r.table}`;
const results = new Map<string, { viewer: Record<string, Outcome>; owner: Record<string, Outcome>; stranger: Outcome; privileges: Record<string, boolean> }>();

beforeAll(async () => {
  const claims = { viewer: gotrueClaims(victor), owner: gotrueClaims(alice), stranger: gotrueClaims(stranger) };
  const plans = new Map<string, { cmds: Awaited<ReturnType<typeof commandsFor>>; copy?: Record<string, unknown> }>();
  for (const rel of relations) {
    plans.set(name(rel), { cmds: await commandsFor(rel), copy: rel.kind === "table" ? await rowToCopy(rel, ACME, ACME) : undefined });
  }
  await walk(async (w) => {
    for (const rel of relations) {
      const { cmds, copy } = plans.get(name(rel))!;
      const [privileges] = await w.owner<Record<string, boolean>>(
        `select has_table_privilege('authenticated', $1::regclass, 'insert') as insert,
                has_any_column_privilege('authenticated', $1::regclass, 'update') as update,
                has_table_privilege('authenticated', $1::regclass, 'delete') as delete`,
        [rel.qualified],
      );
      const attempts = async (c: Record<string, unknown>) => {
        const out: Record<string, Outcome> = { select: await w.as(c, cmds.select, [ACME]) };
        if ("insert" in cmds && cmds.insert) {
          out.insert = copy ? await w.as(c, cmds.insert, [JSON.stringify(copy)]) : { ok: false, code: "no row to copy", message: "" };
          out.update = await w.as(c, cmds.update, [ACME]);
          out.delete = await w.as(c, cmds.delete, [ACME]);
        }
        return out;
      };
      results.set(name(rel), {
        viewer: await attempts(claims.viewer),
        owner: await attempts(claims.owner),
        stranger: await w.as(claims.stranger, cmds.select, [ACME]),
        privileges,
      });
    }
  });
});

const fingerprints = (o: Outcome) => (o.ok ? o.values.map((v) => (v as unknown[])[0] as string) : []);

describe("acme's viewer, on every table and view with org_id", () => {
  it("the map lists every relation, and only those", () => {
    expect(Object.keys(VIEWER).sort()).toEqual(relations.map(name).sort());
  });

  describe.each(relations.map((r) => ({ ...r, key: name(r) })))("$key", (rel) => {
    const r = () => results.get(rel.key)!;
    const want = VIEWER[rel.key];

    it(want?.reads ? "select: the viewer reads the org's rows (allowed case)" : "select: the viewer reads none of the org's rows", async () => {
      const o = r().viewer.select;
      if (!o.ok) expect(o.code, o.message).toBe("42501");
      const publicRows = new Set(fingerprints(r().stranger));
      const beyond = fingerprints(o).filter((f) => !publicRows.has(f));
      if (want.reads) {
        expect(beyond.length).toBeGreaterThan(0);
        return;
      }
      expect(beyond).toEqual([]);
      // The reason the map gives is the one the catalog states.
      if (want.needs === "no client reads") {
        expect(o.ok ? "read" : o.code).toBe("42501");
      } else if (want.needs === "nothing seeded") {
        const { rows } = await admin.query(`select count(*)::int as n from ${rel.qualified} where org_id = $1`, [ACME]);
        expect(rows[0].n, `${rel.key} is seeded now: say what a viewer reads`).toBe(0);
      } else {
        // The SELECT policy (of the table, or of the table a view reads) names the permission.
        const { rows } = await admin.query<{ qual: string }>(
          `select p.qual from pg_policies p
           where p.cmd in ('SELECT', 'ALL') and (p.schemaname, p.tablename) in (
             select $1::text, $2::text
             union
             select d.refobjschema, d.refobjname from (
               select rn.nspname as refobjschema, rc.relname as refobjname
               from pg_rewrite w join pg_depend dp on dp.objid = w.oid
               join pg_class rc on rc.oid = dp.refobjid join pg_namespace rn on rn.oid = rc.relnamespace
               where w.ev_class = $3::regclass and rc.oid <> $3::regclass) d)`,
          want.through ? [...want.through.split("."), want.through] : [rel.schema, rel.table, rel.qualified],
        );
        const quals = rows.map((x) => x.qual).join("\n");
        expect(quals).toContain(want.needs === "own rows" ? "auth.uid()" : `'${want.needs}'::text`);
      }
    });

    if (rel.kind === "table") {
      it.each(["insert", "update", "delete"])("%s: the viewer changes none of the org's rows", (cmd) => {
        const o = r().viewer[cmd];
        expect(isDenied(o), JSON.stringify(o)).toBe(true);
        // Where clients hold the privilege, the owner's same attempt gets past RLS: the denial is the role.
        if (r().privileges[cmd]) {
          const own = r().owner[cmd];
          expect(own.ok ? own.rows > 0 : own.code !== "42501", JSON.stringify(own)).toBe(true);
        }
      });
    }
  });
});
