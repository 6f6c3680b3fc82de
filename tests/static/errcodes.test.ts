// Every SQLSTATE our SQL raises on purpose reaches a client as a documented 4xx, never a 500.
// The walk reads each RAISE in supabase/migrations/*.sql (and, as a cross-check, in the functions
// the live database holds now, so a redefinition in a later migration counts) and asks the api's
// mapping (functions/_shared/http/errors.ts) for its answer. A RAISE without an errcode is P0001,
// which is a 500 by construction: the walk names it so it gets one.
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT } from "../../scripts/lib/env.ts";
import { fromPostgresError, httpForSqlstate } from "../../functions/_shared/http/errors.ts";
import { admin } from "../helpers/db.ts";

interface Raise {
  where: string;
  line: number;
  text: string;
  level: string;
  code?: string;
}

/** Errcodes that are a 500 by design: each says why a client can do nothing about it. */
const SERVER_FAULTS: Record<string, string> = {
  XX000: "the credits ledger disagrees with its grants: an alarm for us, never the caller's fault",
};

/** Postgres condition names a RAISE may use instead of a SQLSTATE. */
const CONDITION_NAMES: Record<string, string> = {
  RAISE_EXCEPTION: "P0001",
  UNIQUE_VIOLATION: "23505",
  FOREIGN_KEY_VIOLATION: "23503",
  CHECK_VIOLATION: "23514",
  NOT_NULL_VIOLATION: "23502",
  INSUFFICIENT_PRIVILEGE: "42501",
  INVALID_PARAMETER_VALUE: "22023",
  NO_DATA_FOUND: "P0002",
  SERIALIZATION_FAILURE: "40001",
};

/** Blanks comments and the inside of quoted strings and identifiers, keeping offsets and newlines. */
function mask(sql: string): string {
  let out = "";
  let i = 0;
  const blank = (s: string) => s.replace(/[^\n]/g, " ");
  while (i < sql.length) {
    const c = sql[i];
    let stop = i + 1;
    if (c === "-" && sql[i + 1] === "-") {
      stop = sql.indexOf("\n", i);
      if (stop < 0) stop = sql.length;
      out += blank(sql.slice(i, stop));
    } else if (c === "/" && sql[i + 1] === "*") {
      stop = sql.indexOf("*/", i + 2);
      stop = stop < 0 ? sql.length : stop + 2;
      out += blank(sql.slice(i, stop));
    } else if (c === "'" || c === '"') {
      // '' (or "") inside is an escaped quote: the scan just continues past it.
      stop = i + 1;
      for (;;) {
        const close = sql.indexOf(c, stop);
        if (close < 0) {
          stop = sql.length;
          break;
        }
        stop = close + 1;
        if (sql[stop] !== c) break;
        stop++;
      }
      out += c + blank(sql.slice(i + 1, stop - 1)) + c;
    } else {
      out += c;
    }
    i = stop;
  }
  return out;
}

/** Every RAISE statement in a piece of SQL or plpgsql (dollar-quoted bodies are read through). */
export function raisesIn(sql: string, where: string): Raise[] {
  const masked = mask(sql);
  const found: Raise[] = [];
  const re = /\braise\b/gi;
  for (let m; (m = re.exec(masked)); ) {
    const semi = masked.indexOf(";", m.index);
    const end = semi < 0 ? sql.length : semi + 1;
    const stmt = sql.slice(m.index, end);
    const bare = masked.slice(m.index, end);
    const level = /^raise\s*;/i.test(bare)
      ? "reraise"
      : (/^raise\s+(exception|notice|warning|info|log|debug)\b/i.exec(bare)?.[1]?.toLowerCase() ?? "exception");
    const literal = /\berrcode\s*=\s*'([^']*)'/i.exec(stmt)?.[1] ?? /^raise\s+(?:exception\s+)?sqlstate\s+'([^']*)'/i.exec(stmt)?.[1];
    const condition = /^raise\s+(?:exception\s+)?([a-z_][a-z0-9_]*)\s*(?:;|using\b)/i.exec(bare)?.[1];
    let code = literal?.toUpperCase();
    if (!code && condition && !/^(exception|notice|warning|info|log|debug)$/i.test(condition)) {
      code = CONDITION_NAMES[condition.toUpperCase()] ?? `unknown condition ${condition}`;
    }
    if (!code && /\berrcode\s*=/i.test(bare)) code = "an errcode that is not a literal";
    found.push({ where, line: sql.slice(0, m.index).split("\n").length, text: stmt.replace(/\s+/g, " ").slice(0, 140), level, code });
  }
  return found;
}

/** What the api answers for a raise: its status, or why the raise is wrong. */
function verdict(r: Raise): string | undefined {
  if (r.level !== "exception") return undefined;
  if (!r.code) return "raises without an errcode (P0001: a 500); add `using errcode = '...'`";
  if (!/^[0-9A-Z]{5}$/.test(r.code)) return `raises ${r.code}: use a 5-character SQLSTATE literal`;
  if (SERVER_FAULTS[r.code]) return undefined;
  const mapped = httpForSqlstate(r.code);
  if (!mapped) return `raises ${r.code}, which the api answers with 500; map it in functions/_shared/http/errors.ts`;
  if (mapped[0] < 400 || mapped[0] >= 500) return `raises ${r.code}, which the api answers with ${mapped[0]}`;
  return undefined;
}

const MIGRATIONS = path.join(ROOT, "supabase/migrations");
const migrationRaises = fs
  .readdirSync(MIGRATIONS)
  .filter((f) => f.endsWith(".sql"))
  .sort()
  .flatMap((f) => raisesIn(fs.readFileSync(path.join(MIGRATIONS, f), "utf8"), f));

describe("the walk's parser", () => {
  it("reads errcodes, SQLSTATEs and condition names, and skips comments, strings and quoted identifiers", () => {
    const sql = `
      create policy "the org's rows" on t for select using (true);
      -- raise exception 'in a comment';
      comment on function f() is 'it may raise exception ''x''; or not';
      create function f() returns void language plpgsql as $$
      begin
        raise exception 'a; b' using errcode = 'PT402';
        raise notice 'fyi';
        raise exception 'no code %', 1;
        raise sqlstate '22023';
        raise exception unique_violation using message = 'taken';
        raise exception using message = 'm', errcode = '40001';
        raise;
      end $$;`;
    expect(raisesIn(sql, "t").map((r) => [r.level, r.code])).toEqual([
      ["exception", "PT402"],
      ["notice", undefined],
      ["exception", undefined],
      ["exception", "22023"],
      ["exception", "23505"],
      ["exception", "40001"],
      ["reraise", undefined],
    ]);
  });

  it("finds the raises the migrations hold (about as many as they say errcode)", () => {
    const all = fs.readdirSync(MIGRATIONS).filter((f) => f.endsWith(".sql")).map((f) => fs.readFileSync(path.join(MIGRATIONS, f), "utf8"));
    const errcodes = all.reduce((n, s) => n + (mask(s).match(/\berrcode\s*=/gi) ?? []).length, 0);
    expect(migrationRaises.filter((r) => r.code).length).toBe(errcodes);
    expect(errcodes).toBeGreaterThan(200);
  });
});

describe("every errcode the SQL raises maps to a 4xx", () => {
  it("in the migrations", () => {
    const bad = migrationRaises.flatMap((r) => {
      const why = verdict(r);
      return why ? [`${r.where}:${r.line} ${why}\n    ${r.text}`] : [];
    });
    expect(bad, bad.join("\n")).toEqual([]);
  });

  it("in the functions the database holds now (the latest definition of each)", async () => {
    const { rows } = await admin.query<{ fn: string; src: string }>(
      `select p.oid::regprocedure::text as fn, p.prosrc as src
         from pg_proc p join pg_namespace n on n.oid = p.pronamespace join pg_language l on l.oid = p.prolang
        where l.lanname = 'plpgsql'
          and n.nspname not in ('pg_catalog', 'information_schema', 'auth', 'storage', 'realtime', 'extensions', 'pgboss', 'supabase_functions', 'graphql', 'vault')
          and n.nspname not like 'pg\\_%'`,
    );
    expect(rows.length).toBeGreaterThan(50);
    const raises = rows.flatMap((r) => raisesIn(r.src, r.fn));
    expect(raises.filter((r) => r.code).length).toBeGreaterThan(150);
    const bad = raises.flatMap((r) => {
      const why = verdict(r);
      return why ? [`${r.where} line ${r.line} ${why}\n    ${r.text}`] : [];
    });
    expect(bad, bad.join("\n")).toEqual([]);
  });
});

describe("the api's class rules", () => {
  const status = (code: string) => fromPostgresError({ code, message: "m" })?.status;

  it("maps the whole data-exception class 22 to 400", () => {
    for (const code of ["22000", "22001", "22003", "22007", "22008", "22012", "22021", "22023", "22P02", "22P05"]) {
      expect(status(code), code).toBe(400);
    }
    expect(fromPostgresError({ code: "22021", message: "invalid byte sequence" })?.code).toBe("invalid_request");
  });

  it("maps integrity violations to 409, except a missing value (23502) which is bad input", () => {
    for (const code of ["23000", "23001", "23503", "23505", "23514", "23P01"]) expect(status(code), code).toBe(409);
    expect(status("23502")).toBe(400);
  });

  it("maps PostgREST's PTxxx to that status", () => {
    expect([status("PT400"), status("PT402"), status("PT403"), status("PT404"), status("PT409"), status("PT429")]).toEqual([
      400, 402, 403, 404, 409, 429,
    ]);
  });

  it("keeps our own faults 500: plain raise P0001, no_data_found, undefined objects, XX000", () => {
    for (const code of ["P0001", "P0002", "42703", "42883", "XX000", "08006"]) expect(fromPostgresError({ code, message: "m" }), code).toBeUndefined();
    // Node's own errors carry string codes too; they are not SQLSTATEs.
    expect(fromPostgresError({ code: "EPIPE", message: "m" })).toBeUndefined();
    expect(fromPostgresError({ code: "ECONNREFUSED", message: "m" })).toBeUndefined();
  });
});
