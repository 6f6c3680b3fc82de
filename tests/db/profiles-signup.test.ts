import { describe, expect, it } from "vitest";
import { admin, createTeam, createUser, expectSqlError, select, as } from "../helpers/db.ts";

describe("signup", () => {
  it("creates a profile and a personal org with the user as sole owner", async () => {
    const user = await createUser({ meta: { full_name: "Ada Lovelace", timezone: "Europe/London", locale: "en-GB" } });
    const [profile] = await select(user, "select * from public.my_profile()");
    expect(profile).toMatchObject({ id: user.id, display_name: "Ada Lovelace", timezone: "Europe/London", locale: "en-GB", marketing_consent: false });
    const orgs = await select(user, "select kind, role from public.my_orgs");
    expect(orgs).toEqual([{ kind: "personal", role: "owner" }]);
  });

  it("falls back to safe defaults for junk metadata", async () => {
    const user = await createUser({ meta: { timezone: "Mars/Olympus", locale: "!!" } });
    const [profile] = await select(user, "select timezone, locale, display_name from public.profiles where id = $1", [user.id]);
    expect(profile).toEqual({ timezone: "UTC", locale: "en", display_name: user.email.split("@")[0] });
  });
});

describe("profiles RLS", () => {
  it("a user reads their own profile and co-members' profiles, not strangers'", async () => {
    const team = await createTeam();
    const stranger = await createUser();
    const seen = await select<{ id: string }>(team.viewer, "select id from public.profiles");
    const ids = seen.map((r) => r.id);
    expect(ids).toEqual(expect.arrayContaining([team.viewer.id, team.owner.id, team.admin.id, team.member.id]));
    expect(ids).not.toContain(stranger.id);
    expect(await select(stranger, "select id from public.profiles where id = $1", [team.owner.id])).toEqual([]);
  });

  it("marketing consent is private: co-members cannot read it, the user reads it through my_profile()", async () => {
    const team = await createTeam();
    await expectSqlError(select(team.viewer, "select marketing_consent from public.profiles where id = $1", [team.owner.id]), "42501");
    expect(await select(team.viewer, "select display_name from public.profiles where id = $1", [team.owner.id])).toHaveLength(1);
    expect((await select(team.owner, "select id, marketing_consent from public.my_profile()"))[0]).toEqual({ id: team.owner.id, marketing_consent: false });
    await expectSqlError(select("anon", "select * from public.my_profile()"), "42501");
  });

  it("anon reads no profiles", async () => {
    await expectSqlError(select("anon", "select id from public.profiles"), "42501");
  });

  it("a user updates their own profile and consent is time-stamped", async () => {
    const user = await createUser();
    const { rows: before } = await admin.query("select marketing_consent_at from public.profiles where id = $1", [user.id]);
    expect(before).toEqual([{ marketing_consent_at: null }]);
    await as(user, (c) => c.query("update public.profiles set display_name = 'New', marketing_consent = true where id = $1", [user.id]));
    const { rows } = await admin.query("select display_name, marketing_consent, marketing_consent_at from public.profiles where id = $1", [user.id]);
    expect(rows[0].display_name).toBe("New");
    expect(rows[0].marketing_consent).toBe(true);
    expect(rows[0].marketing_consent_at).toBeInstanceOf(Date);
  });

  it("a user cannot update someone else's profile, even a co-member's", async () => {
    const team = await createTeam();
    const row = async () => (await admin.query("select * from public.profiles where id = $1", [team.member.id])).rows[0];
    const before = await row();
    const res = await as(team.owner, (c) => c.query("update public.profiles set display_name = 'hacked' where id = $1", [team.member.id]));
    expect(res.rowCount).toBe(0);
    expect(await row()).toEqual(before);
  });

  it("refuses an unknown time zone with 22023 and changes nothing", async () => {
    const user = await createUser();
    await expectSqlError(
      as(user, (c) => c.query("update public.profiles set timezone = 'Nowhere/Land' where id = $1", [user.id])),
      "22023",
      /time zone/,
    );
    const { rows } = await admin.query("select timezone from public.profiles where id = $1", [user.id]);
    expect(rows[0].timezone).toBe("UTC");
  });

  it("cannot write columns outside the profile's own (created_at, id)", async () => {
    const user = await createUser();
    const row = async () => (await admin.query("select * from public.profiles where id = $1", [user.id])).rows;
    const before = await row();
    expect(before).toHaveLength(1);
    await expectSqlError(as(user, (c) => c.query("update public.profiles set created_at = now() where id = $1", [user.id])), "42501");
    await expectSqlError(as(user, (c) => c.query("insert into public.profiles (id) values (gen_random_uuid())")), "42501");
    await expectSqlError(as(user, (c) => c.query("delete from public.profiles where id = $1", [user.id])), "42501");
    expect(await row()).toEqual(before);
  });
});
