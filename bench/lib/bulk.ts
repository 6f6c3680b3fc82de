// Bulk seeding for benchmarks: load a big table with its indexes and unique constraints off, then
// build them once. Building a btree from sorted input is several times faster than inserting a
// million random keys one by one (1M invitations: ~5 s instead of ~40 s on 2 cores). The indexes
// come back with exactly their catalog definitions, so the measured queries see the same schema.
// A key that other tables' foreign keys reference (content.documents' primary key) stays in place:
// it cannot be dropped without dropping those constraints.
import type pg from "pg";

export interface BulkOptions {
  /** More sessions to build the indexes on, side by side with c (each build uses one core). */
  builders?: pg.Client[];
  /** Called after the load and after each build, with what was done. */
  progress?: (step: string) => void;
}

export async function loadWithoutIndexes(c: pg.Client, table: string, load: () => Promise<unknown>, opts: BulkOptions = {}): Promise<void> {
  const { progress } = opts;
  const { rows } = await c.query<{ drop_sql: string; create_sql: string }>(
    `select format('alter table %s drop constraint %I', $1::regclass, conname) as drop_sql,
            format('alter table %s add constraint %I %s', $1::regclass, conname, pg_get_constraintdef(oid)) as create_sql
     from pg_constraint k where conrelid = $1::regclass and contype in ('p', 'u', 'x')
       and not exists (select 1 from pg_constraint f where f.contype = 'f' and f.conindid = k.conindid)
     union all
     select format('drop index %s', i.indexrelid::regclass), pg_get_indexdef(i.indexrelid)
     from pg_index i
     where i.indrelid = $1::regclass and not exists (select 1 from pg_constraint k where k.conindid = i.indexrelid)
       and not exists (select 1 from pg_constraint f where f.contype = 'f' and f.conindid = i.indexrelid)`,
    [table],
  );
  for (const r of rows) await c.query(r.drop_sql);
  await load();
  progress?.(`load ${table}`);
  // The slow builds (GIN) first, so that sessions building side by side finish together.
  const queue = [...rows].sort((a, b) => Number(/ using gin /i.test(b.create_sql)) - Number(/ using gin /i.test(a.create_sql)));
  await Promise.all([c, ...(opts.builders ?? [])].map(async (s) => {
    await s.query("set maintenance_work_mem = '256MB'");
    try {
      for (let r = queue.shift(); r; r = queue.shift()) {
        await s.query(r.create_sql);
        progress?.(r.create_sql.replace(/ ON .*? USING /, " ").slice(0, 60));
      }
    } finally {
      await s.query("reset maintenance_work_mem");
    }
  }));
}
