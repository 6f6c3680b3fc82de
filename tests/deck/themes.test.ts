// Themes: GET /api/deck/themes in Gamma's List Themes shape (global themes as standard, then the
// caller's orgs' own as custom, cursor-paginated), and an org's themes written with PostgREST on
// deck.themes (RLS from the schema migration): writers add, change and delete their org's;
// viewers read only; another org reads and changes none; the global gallery is read-only to
// clients, and so are the price table and the template categories; tokens of the wrong shape are
// refused by the check constraint (23514).
import { beforeAll, describe, expect, it } from "vitest";
import { admin, as, createTeam, select, type Team } from "../helpers/db.ts";
import { call, expectError } from "../helpers/http.ts";
import { tokenFor } from "../helpers/supabase.ts";

const TOKENS = {
  colors: { background: "#FFFFFF", text: "#111111", accent: "#FF5500", muted: "#777777" },
  fonts: { heading: "Inter", body: "Inter" },
  radii: { card: 8, image: 4 },
  backgrounds: { card: "#FFFFFF", title: "#FFEEDD" },
};

let team: Team;
let other: Team;
let globals: string[];

/** Inserts a theme as the user, as supabase.from("themes").insert() does through PostgREST. */
function insertTheme(user: Team["member"], orgId: string, name: string, tokens: unknown = TOKENS, extra: Record<string, unknown> = {}) {
  return as(user, async (c) =>
    (await c.query(
      `insert into deck.themes (org_id, name, tokens, color_keywords, tone_keywords, created_by)
       values ($1, $2, $3, $4, $5, $6) returning id, org_id, name`,
      [orgId, name, JSON.stringify(tokens), extra.color_keywords ?? ["orange"], extra.tone_keywords ?? ["warm"], extra.created_by ?? user.id],
    )).rows[0] as { id: string; org_id: string; name: string });
}

async function listAll(token: string, query = "") {
  const pages: { data: { id: string; type: string; name: string }[]; hasMore: boolean; nextCursor: string | null }[] = [];
  let after: string | null = null;
  do {
    const res: { status: number; raw: string; body: (typeof pages)[number] } = await call(`/api/deck/themes?limit=2${query}${after ? `&after=${after}` : ""}`, { token });
    expect(res.status, res.raw).toBe(200);
    pages.push(res.body);
    after = res.body.nextCursor;
    expect(pages.length).toBeLessThan(50);
  } while (after);
  return pages;
}

beforeAll(async () => {
  [team, other] = await Promise.all([createTeam("Themes"), createTeam("Other")]);
  globals = (await admin.query("select id from deck.global_themes order by name collate \"C\", id collate \"C\"")).rows.map((r) => r.id);
});

describe("org themes through PostgREST (RLS)", () => {
  it("a writer adds, changes and deletes the org's theme; the viewer reads it and changes nothing", async () => {
    const t = await insertTheme(team.member, team.orgId, "Brand");
    expect(t.org_id).toBe(team.orgId);
    expect(await select(team.viewer, "select id from deck.themes where id = $1", [t.id])).toHaveLength(1);
    await expect(insertTheme(team.viewer, team.orgId, "Viewer's")).rejects.toMatchObject({ code: "42501" });
    expect(await select(team.viewer, "update deck.themes set name = 'Hacked' where id = $1 returning id", [t.id])).toHaveLength(0);
    expect(await select(team.viewer, "delete from deck.themes where id = $1 returning id", [t.id])).toHaveLength(0);
    expect((await admin.query("select name from deck.themes where id = $1", [t.id])).rows[0].name).toBe("Brand");

    expect(await select(team.admin, "update deck.themes set name = 'Brand 2', tone_keywords = '{bold}' where id = $1 returning id", [t.id])).toHaveLength(1);
    expect((await admin.query("select name, tone_keywords from deck.themes where id = $1", [t.id])).rows[0]).toEqual({ name: "Brand 2", tone_keywords: ["bold"] });
    // Columns outside the update grant (org, author) cannot be changed.
    await expect(select(team.admin, "update deck.themes set org_id = $2 where id = $1", [t.id, other.orgId])).rejects.toMatchObject({ code: "42501" });
    expect(await select(team.member, "delete from deck.themes where id = $1 returning id", [t.id])).toHaveLength(1);
    expect((await admin.query("select count(*)::int as n from deck.themes where id = $1", [t.id])).rows[0].n).toBe(0);
  });

  it("a writer cannot add a theme for another org, or in someone else's name", async () => {
    await expect(insertTheme(team.member, other.orgId, "Theirs")).rejects.toMatchObject({ code: "42501" });
    await expect(insertTheme(team.member, team.orgId, "Forged", TOKENS, { created_by: team.owner.id })).rejects.toMatchObject({ code: "42501" });
  });

  it("another org's owner reads, changes and deletes none of the org's themes", async () => {
    const t = await insertTheme(team.member, team.orgId, "Private brand");
    expect(await select(other.owner, "select id from deck.themes where id = $1", [t.id])).toHaveLength(0);
    expect(await select(other.owner, "update deck.themes set name = 'x' where id = $1 returning id", [t.id])).toHaveLength(0);
    expect(await select(other.owner, "delete from deck.themes where id = $1 returning id", [t.id])).toHaveLength(0);
    expect((await admin.query("select name from deck.themes where id = $1", [t.id])).rows[0].name).toBe("Private brand");
  });

  it("tokens of the wrong shape are refused (23514) and nothing is written", async () => {
    const before = (await admin.query("select count(*)::int as n from deck.themes where org_id = $1", [team.orgId])).rows[0].n;
    const { radii: _r, ...noRadii } = TOKENS;
    for (const bad of [noRadii, { ...TOKENS, colors: "red" }, [], { ...TOKENS, fonts: { heading: "x".repeat(17_000) } }]) {
      await expect(insertTheme(team.member, team.orgId, "Bad", bad)).rejects.toMatchObject({ code: "23514" });
    }
    const t = await insertTheme(team.member, team.orgId, "Good");
    await expect(select(team.member, "update deck.themes set tokens = '{}' where id = $1", [t.id])).rejects.toMatchObject({ code: "23514" });
    await expect(insertTheme(team.member, team.orgId, "")).rejects.toMatchObject({ code: "23514" });
    expect((await admin.query("select count(*)::int as n from deck.themes where org_id = $1", [team.orgId])).rows[0].n).toBe(before + 1);
  });

  it("the global themes: anyone signed in reads them, no client writes them, anon reads nothing", async () => {
    expect((await select(other.viewer, "select id from deck.global_themes")).map((r) => r.id).sort()).toEqual([...globals].sort());
    await expect(select(team.owner, "insert into deck.global_themes (id, name, tokens) values ('mine', 'Mine', $1)", [JSON.stringify(TOKENS)])).rejects.toMatchObject({ code: "42501" });
    await expect(select(team.owner, "update deck.global_themes set name = 'x'")).rejects.toMatchObject({ code: "42501" });
    await expect(select(team.owner, "delete from deck.global_themes")).rejects.toMatchObject({ code: "42501" });
    await expect(select("anon", "select id from deck.global_themes")).rejects.toMatchObject({ code: "42501" });
    expect((await admin.query("select count(*)::int as n from deck.global_themes")).rows[0].n).toBe(globals.length);
  });

  it("the price table and the template categories: anyone signed in reads them, no client writes them (not even an owner), anon reads nothing", async () => {
    const prices = (await admin.query("select key, credits::int from deck.prices order by key")).rows;
    expect(prices.length).toBe(4);
    expect(await select(other.viewer, "select key, credits::int from deck.prices order by key")).toEqual(prices);
    const categories = (await admin.query("select key from deck.template_categories order by key")).rows;
    expect(await select(other.viewer, "select key from deck.template_categories order by key")).toEqual(categories);
    for (const [table, write] of [
      ["prices", "update deck.prices set credits = 0"],
      ["prices", "insert into deck.prices (key, credits, description) values ('image:basic', 0, 'free')"],
      ["prices", "delete from deck.prices"],
      ["template_categories", "update deck.template_categories set name = 'x'"],
      ["template_categories", "insert into deck.template_categories (key, name) values ('mine', 'Mine')"],
      ["template_categories", "delete from deck.template_categories"],
    ]) {
      await expect(select(team.owner, write), `${table}: ${write}`).rejects.toMatchObject({ code: "42501" });
    }
    await expect(select("anon", "select key from deck.prices")).rejects.toMatchObject({ code: "42501" });
    await expect(select("anon", "select key from deck.template_categories")).rejects.toMatchObject({ code: "42501" });
    expect((await admin.query("select key, credits::int from deck.prices order by key")).rows).toEqual(prices);
    expect((await admin.query("select key from deck.template_categories order by key")).rows).toEqual(categories);
  });
});

describe("GET /api/deck/themes", () => {
  let mine: { id: string; name: string }[];
  let team: Team;
  beforeAll(async () => {
    const t = await createTeam("Listing");
    team = t;
    mine = [];
    for (const name of ["Zebra", "Alpha", "Mango"]) mine.push(await insertTheme(t.member, t.orgId, name, TOKENS, { color_keywords: name === "Mango" ? ["teal"] : ["orange"] }));
    await insertTheme(other.member, other.orgId, "Other org's");
  });

  it("lists the standard themes then the org's custom ones by name, in Gamma's shape, across pages", async () => {
    const pages = await listAll(await tokenFor(team.viewer));
    const all = pages.flatMap((p) => p.data);
    expect(all.map((t) => t.id)).toEqual([...globals, ...["Alpha", "Mango", "Zebra"].map((n) => mine.find((m) => m.name === n)!.id)]);
    expect(all.map((t) => t.type)).toEqual([...globals.map(() => "standard"), "custom", "custom", "custom"]);
    expect(pages.slice(0, -1).every((p) => p.hasMore && p.data.length === 2)).toBe(true);
    expect(pages.at(-1)).toMatchObject({ hasMore: false, nextCursor: null });
    const res = await call("/api/deck/themes?limit=50", { token: await tokenFor(team.viewer) });
    expect(res.body.data.find((t: { name: string }) => t.name === "Mango")).toEqual({
      id: mine[2].id, name: "Mango", type: "custom", orgId: team.orgId, colorKeywords: ["teal"], toneKeywords: ["warm"], tokens: TOKENS,
    });
    expect(res.body.data[0]).toMatchObject({ type: "standard", orgId: null, tokens: { colors: expect.any(Object) } });
  });

  it("another org's member sees the standard themes and their own, never this org's", async () => {
    const all = (await listAll(await tokenFor(other.member))).flatMap((p) => p.data);
    expect(all.filter((t) => t.type === "custom").map((t) => t.name)).toEqual(["Other org's"]);
    const filtered = await call(`/api/deck/themes?orgId=${team.orgId}`, { token: await tokenFor(other.member) });
    expect(filtered.body.data.filter((t: { type: string }) => t.type === "custom")).toEqual([]);
  });

  it("filters by org and by a word in the name or keywords", async () => {
    const token = await tokenFor(team.member);
    const teal = await call("/api/deck/themes?query=teal", { token });
    expect(teal.body.data.map((t: { name: string }) => t.name)).toEqual(["Mango"]);
    const dark = await call("/api/deck/themes?query=dark", { token });
    expect(dark.body.data.map((t: { type: string }) => t.type)).toEqual(["standard"]);
  });

  it("bad paging input is a 400; no token is a 401", async () => {
    const token = await tokenFor(team.member);
    expectError(await call("/api/deck/themes?after=not-a-cursor", { token }), 400, "invalid_request");
    expectError(await call("/api/deck/themes?limit=0", { token }), 400, "invalid_request");
    expectError(await call("/api/deck/themes?limit=51", { token }), 400, "invalid_request");
    expectError(await call("/api/deck/themes?orgId=nope", { token }), 400, "invalid_request");
    expect((await call("/api/deck/themes")).status).toBe(401);
  });
});
