import { createHash, randomUUID } from "node:crypto";
import type pg from "pg";
import { describe, expect, it } from "vitest";
import { gotrueClaims } from "../../scripts/lib/keys.ts";
import { admin, as, createTeam, createUser, expectSqlError, roleOf, rpc, select, type TestUser } from "../helpers/db.ts";

interface Invite {
  invitation_id: string;
  token: string;
  expires_at: Date;
}

const DAY = 24 * 3600 * 1000;

function freshEmail(tag = "invitee") {
  return `${tag}-${randomUUID().slice(0, 8)}@test.local`;
}

async function invite(who: TestUser, orgId: string, email: string, role = "member", expiresIn?: string) {
  const args: Record<string, unknown> = { p_org_id: orgId, p_email: email, p_role: role };
  if (expiresIn) args.p_expires_in = expiresIn;
  const [inv] = await rpc<Invite>(who, "invite_member", args);
  return inv;
}

async function invitationRow(id: string) {
  const { rows } = await admin.query("select * from public.invitations where id = $1", [id]);
  return rows[0];
}

/**
 * Runs fn as `who` in one transaction that first moves the invitation's expiry into the past.
 * The expired row exists only inside this transaction (locked by it), so no purge, scheduled
 * or run by another test, can delete it first; the transaction rolls back afterwards.
 */
async function asWithExpired<T>(invitationId: string, who: TestUser, fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
  const c = await admin.connect();
  try {
    await c.query("begin");
    const upd = await c.query("update public.invitations set expires_at = now() - interval '1 minute' where id = $1", [invitationId]);
    expect(upd.rowCount).toBe(1);
    await c.query("select set_config('request.jwt.claims', $1, true), set_config('role', 'authenticated', true)", [
      JSON.stringify(gotrueClaims(who, { aal: "aal1" })),
    ]);
    return await fn(c);
  } finally {
    await c.query("rollback").catch(() => {});
    c.release();
  }
}

async function personalOrgOf(user: TestUser): Promise<string> {
  const { rows } = await admin.query("select id from public.orgs where personal_user_id = $1", [user.id]);
  return rows[0].id;
}

describe("invite_member", () => {
  it("an admin invites and gets the id, a token and an expiry about 7 days out", async () => {
    const team = await createTeam();
    const email = freshEmail();
    const before = Date.now();
    const inv = await invite(team.admin, team.orgId, email, "viewer");
    expect(inv.invitation_id).toMatch(/^[0-9a-f-]{36}$/);
    expect(inv.token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(inv.expires_at).toBeInstanceOf(Date);
    const ms = inv.expires_at.getTime() - before;
    expect(ms).toBeGreaterThan(7 * DAY - 60_000);
    expect(ms).toBeLessThan(7 * DAY + 60_000);
    const row = await invitationRow(inv.invitation_id);
    expect(row).toMatchObject({ org_id: team.orgId, email, role: "viewer", invited_by: team.admin.id, accepted_at: null, revoked_at: null });
    // Only the hash is stored, never the token itself.
    expect(Buffer.from(row.token_hash).equals(createHash("sha256").update(inv.token).digest())).toBe(true);
  });

  it("normalises the email to lower case (and trims it)", async () => {
    const team = await createTeam();
    const email = freshEmail("MiXeD");
    const inv = await invite(team.admin, team.orgId, `  ${email.toUpperCase()} `);
    expect((await invitationRow(inv.invitation_id)).email).toBe(email.toLowerCase());
  });

  it("members and viewers cannot invite (42501); strangers do not see the org (PT404)", async () => {
    const team = await createTeam();
    const stranger = await createUser();
    await expectSqlError(invite(team.member, team.orgId, freshEmail()), "42501", /members\.manage/);
    await expectSqlError(invite(team.viewer, team.orgId, freshEmail()), "42501", /members\.manage/);
    await expectSqlError(invite(stranger, team.orgId, freshEmail()), "PT404");
    const { rows } = await admin.query("select count(*)::int as n from public.invitations where org_id = $1", [team.orgId]);
    expect(rows[0].n).toBe(0);
  });

  it("an admin cannot invite an owner, but an owner can", async () => {
    const team = await createTeam();
    await expectSqlError(invite(team.admin, team.orgId, freshEmail(), "owner"), "42501", /outranks/);
    const inv = await invite(team.owner, team.orgId, freshEmail(), "owner");
    expect((await invitationRow(inv.invitation_id)).role).toBe("owner");
  });

  it("refuses an unknown role, an invalid email and an expiry outside 1 hour..30 days with 22023", async () => {
    const team = await createTeam();
    await expectSqlError(invite(team.admin, team.orgId, freshEmail(), "superuser"), "22023", /unknown role/);
    for (const bad of ["not-an-email", "a@b", "two words@test.local", "@test.local", ""]) {
      await expectSqlError(invite(team.admin, team.orgId, bad), "22023", /invalid email/);
    }
    await expectSqlError(invite(team.admin, team.orgId, freshEmail(), "member", "59 minutes"), "22023", /between 1 hour and 30 days/);
    await expectSqlError(invite(team.admin, team.orgId, freshEmail(), "member", "30 days 1 second"), "22023", /between 1 hour and 30 days/);
    await expectSqlError(invite(team.admin, team.orgId, freshEmail(), "member", "-1 day"), "22023", /between 1 hour and 30 days/);
    // The bounds themselves are allowed.
    const short = await invite(team.admin, team.orgId, freshEmail(), "member", "1 hour");
    const long = await invite(team.admin, team.orgId, freshEmail(), "member", "30 days");
    const now = Date.now();
    expect(Math.abs(short.expires_at.getTime() - now - 3600_000)).toBeLessThan(60_000);
    expect(Math.abs(long.expires_at.getTime() - now - 30 * DAY)).toBeLessThan(60_000);
  });

  it("refuses to invite someone who is already a member (23505), whatever the case of the email", async () => {
    const team = await createTeam();
    await expectSqlError(invite(team.admin, team.orgId, team.member.email), "23505", /already a member/);
    await expectSqlError(invite(team.admin, team.orgId, team.viewer.email.toUpperCase()), "23505", /already a member/);
  });

  it("refuses to invite into a personal org (42501)", async () => {
    const user = await createUser();
    const personal = await personalOrgOf(user);
    await expectSqlError(invite(user, personal, freshEmail()), "42501", /personal org/);
    const { rows } = await admin.query("select count(*)::int as n from public.invitations where org_id = $1", [personal]);
    expect(rows[0].n).toBe(0);
  });

  it("re-inviting the same email revokes the old pending invitation and leaves exactly one pending", async () => {
    const team = await createTeam();
    const email = freshEmail();
    const invitee = await createUser({ email });
    const first = await invite(team.admin, team.orgId, email, "viewer");
    const second = await invite(team.owner, team.orgId, email.toUpperCase(), "member");
    expect(second.invitation_id).not.toBe(first.invitation_id);
    expect(second.token).not.toBe(first.token);
    expect((await invitationRow(first.invitation_id)).revoked_at).toBeInstanceOf(Date);
    const { rows } = await admin.query(
      "select id, role from public.invitations where org_id = $1 and email = $2 and accepted_at is null and revoked_at is null",
      [team.orgId, email],
    );
    expect(rows).toEqual([{ id: second.invitation_id, role: "member" }]);
    await expectSqlError(rpc(invitee, "accept_invitation", { p_token: first.token }), "22023", /revoked/);
    expect(await roleOf(team.orgId, invitee.id)).toBeUndefined();
    await rpc(invitee, "accept_invitation", { p_token: second.token });
    expect(await roleOf(team.orgId, invitee.id)).toBe("member");
  });
});

describe("accept_invitation", () => {
  it("the invitee joins with the invited role and the invitation is marked accepted", async () => {
    const team = await createTeam();
    const email = freshEmail();
    const inv = await invite(team.admin, team.orgId, email, "viewer");
    const invitee = await createUser({ email });
    const [res] = await rpc<{ accept_invitation: string }>(invitee, "accept_invitation", { p_token: inv.token });
    expect(res.accept_invitation).toBe(team.orgId);
    expect(await roleOf(team.orgId, invitee.id)).toBe("viewer");
    const row = await invitationRow(inv.invitation_id);
    expect(row.accepted_at).toBeInstanceOf(Date);
    expect(row.accepted_by).toBe(invitee.id);
    expect(row.revoked_at).toBeNull();
    const orgs = await select(invitee, "select id, role from public.my_orgs where kind = 'team'");
    expect(orgs).toEqual([{ id: team.orgId, role: "viewer" }]);
  });

  it("a token works once: the second use fails with 'already been used'", async () => {
    const team = await createTeam();
    const email = freshEmail();
    const inv = await invite(team.admin, team.orgId, email);
    const invitee = await createUser({ email });
    await rpc(invitee, "accept_invitation", { p_token: inv.token });
    await expectSqlError(rpc(invitee, "accept_invitation", { p_token: inv.token }), "22023", /already been used/);
    const { rows } = await admin.query("select count(*)::int as n from public.org_members where org_id = $1 and user_id = $2", [
      team.orgId,
      invitee.id,
    ]);
    expect(rows[0].n).toBe(1);
  });

  it("another verified user cannot use the token (42501 'different email')", async () => {
    const team = await createTeam();
    const inv = await invite(team.admin, team.orgId, freshEmail());
    const other = await createUser();
    await expectSqlError(rpc(other, "accept_invitation", { p_token: inv.token }), "42501", /different email/);
    expect(await roleOf(team.orgId, other.id)).toBeUndefined();
    expect((await invitationRow(inv.invitation_id)).accepted_at).toBeNull();
  });

  it("an unverified user with the right email must verify first (42501)", async () => {
    const team = await createTeam();
    const email = freshEmail();
    const inv = await invite(team.admin, team.orgId, email);
    const unverified = await createUser({ email, verified: false });
    await expectSqlError(rpc(unverified, "accept_invitation", { p_token: inv.token }), "42501", /verify/);
    expect(await roleOf(team.orgId, unverified.id)).toBeUndefined();
    expect((await invitationRow(inv.invitation_id)).accepted_at).toBeNull();
  });

  it("an expired invitation fails with 22023 'expired'", async () => {
    const team = await createTeam();
    const email = freshEmail();
    const inv = await invite(team.admin, team.orgId, email);
    const invitee = await createUser({ email });
    await expectSqlError(
      asWithExpired(inv.invitation_id, invitee, (c) => c.query("select public.accept_invitation($1)", [inv.token])),
      "22023",
      /expired/,
    );
    expect(await roleOf(team.orgId, invitee.id)).toBeUndefined();
    const row = await invitationRow(inv.invitation_id);
    expect(row).toMatchObject({ accepted_at: null, accepted_by: null, revoked_at: null });
    // The same token still works once the expiry is in the future again (it was only moved inside that transaction).
    await rpc(invitee, "accept_invitation", { p_token: inv.token });
    expect(await roleOf(team.orgId, invitee.id)).toBe("member");
  });

  it("a revoked invitation fails with 22023", async () => {
    const team = await createTeam();
    const email = freshEmail();
    const inv = await invite(team.admin, team.orgId, email);
    const invitee = await createUser({ email });
    await rpc(team.admin, "revoke_invitation", { p_invitation_id: inv.invitation_id });
    await expectSqlError(rpc(invitee, "accept_invitation", { p_token: inv.token }), "22023", /revoked/);
    expect(await roleOf(team.orgId, invitee.id)).toBeUndefined();
  });

  it("a bogus token fails with PT404", async () => {
    const user = await createUser();
    await expectSqlError(rpc(user, "accept_invitation", { p_token: "no-such-token-" + randomUUID() }), "PT404", /not found/);
    await expectSqlError(rpc(user, "accept_invitation", { p_token: "" }), "PT404");
  });

  it("anon cannot call it", async () => {
    await expectSqlError(rpc("anon", "accept_invitation", { p_token: "x" }), "42501");
  });

  it("matches the email case-insensitively, both ways", async () => {
    const team = await createTeam();
    // Invited in mixed case, account in lower case.
    const lower = freshEmail("lower");
    const inv1 = await invite(team.admin, team.orgId, lower.toUpperCase());
    const u1 = await createUser({ email: lower });
    await rpc(u1, "accept_invitation", { p_token: inv1.token });
    expect(await roleOf(team.orgId, u1.id)).toBe("member");
    // Invited in lower case, account in mixed case.
    const mixed = `Mixed.${randomUUID().slice(0, 8)}@Test.LOCAL`;
    const inv2 = await invite(team.admin, team.orgId, mixed.toLowerCase(), "viewer");
    const u2 = await createUser({ email: mixed });
    await rpc(u2, "accept_invitation", { p_token: inv2.token });
    expect(await roleOf(team.orgId, u2.id)).toBe("viewer");
  });

  it("concurrent accepts of one invitation: exactly one succeeds, one membership row", async () => {
    const team = await createTeam();
    const email = freshEmail();
    const inv = await invite(team.admin, team.orgId, email, "member");
    const invitee = await createUser({ email });
    const results = await Promise.allSettled(
      Array.from({ length: 5 }, () => rpc(invitee, "accept_invitation", { p_token: inv.token })),
    );
    const fulfilled = results.filter((r) => r.status === "fulfilled");
    const rejected = results.filter((r): r is PromiseRejectedResult => r.status === "rejected");
    expect(fulfilled).toHaveLength(1);
    expect(rejected).toHaveLength(4);
    for (const r of rejected) {
      const err = r.reason as { code?: string; message: string };
      expect(["22023", "23505"], err.message).toContain(err.code);
    }
    const { rows } = await admin.query("select role from public.org_members where org_id = $1 and user_id = $2", [team.orgId, invitee.id]);
    expect(rows).toEqual([{ role: "member" }]);
    const row = await invitationRow(inv.invitation_id);
    expect(row.accepted_by).toBe(invitee.id);
  });
});

describe("revoke_invitation", () => {
  it("an admin revokes a pending invitation", async () => {
    const team = await createTeam();
    const inv = await invite(team.admin, team.orgId, freshEmail());
    await rpc(team.admin, "revoke_invitation", { p_invitation_id: inv.invitation_id });
    const row = await invitationRow(inv.invitation_id);
    expect(row.revoked_at).toBeInstanceOf(Date);
    expect(row.accepted_at).toBeNull();
  });

  it("a member cannot revoke (42501) and the invitation stays pending", async () => {
    const team = await createTeam();
    const inv = await invite(team.admin, team.orgId, freshEmail());
    await expectSqlError(rpc(team.member, "revoke_invitation", { p_invitation_id: inv.invitation_id }), "42501");
    await expectSqlError(rpc(team.viewer, "revoke_invitation", { p_invitation_id: inv.invitation_id }), "42501");
    expect((await invitationRow(inv.invitation_id)).revoked_at).toBeNull();
  });

  it("a stranger gets PT404, as for an unknown id", async () => {
    const team = await createTeam();
    const stranger = await createUser();
    const inv = await invite(team.admin, team.orgId, freshEmail());
    await expectSqlError(rpc(stranger, "revoke_invitation", { p_invitation_id: inv.invitation_id }), "PT404");
    expect((await invitationRow(inv.invitation_id)).revoked_at).toBeNull();
  });

  it("revoking twice fails with 22023; revoking an accepted invitation too", async () => {
    const team = await createTeam();
    const inv = await invite(team.admin, team.orgId, freshEmail());
    await rpc(team.admin, "revoke_invitation", { p_invitation_id: inv.invitation_id });
    await expectSqlError(rpc(team.admin, "revoke_invitation", { p_invitation_id: inv.invitation_id }), "22023", /no longer pending/);

    const email = freshEmail();
    const accepted = await invite(team.admin, team.orgId, email);
    const invitee = await createUser({ email });
    await rpc(invitee, "accept_invitation", { p_token: accepted.token });
    await expectSqlError(rpc(team.admin, "revoke_invitation", { p_invitation_id: accepted.invitation_id }), "22023", /no longer pending/);
    expect((await invitationRow(accepted.invitation_id)).revoked_at).toBeNull();
  });

  it("an unknown id fails with PT404", async () => {
    const team = await createTeam();
    await expectSqlError(rpc(team.admin, "revoke_invitation", { p_invitation_id: randomUUID() }), "PT404", /not found/);
  });
});

describe("invitations RLS", () => {
  const cols = "id, org_id, email, role, invited_by, expires_at, accepted_at, accepted_by, revoked_at, created_at, updated_at";

  it("member managers read their org's invitations; members, viewers and strangers read none", async () => {
    const team = await createTeam();
    const other = await createTeam("Other");
    const stranger = await createUser();
    const inv = await invite(team.admin, team.orgId, freshEmail());
    const otherInv = await invite(other.admin, other.orgId, freshEmail());

    for (const who of [team.admin, team.owner]) {
      const rows = await select<{ id: string }>(who, `select ${cols} from public.invitations`);
      const ids = rows.map((r) => r.id);
      expect(ids).toContain(inv.invitation_id);
      expect(ids).not.toContain(otherInv.invitation_id);
    }
    for (const who of [team.member, team.viewer, stranger]) {
      expect(await select(who, `select ${cols} from public.invitations`)).toEqual([]);
    }
  });

  it("token_hash is not readable by clients (42501)", async () => {
    const team = await createTeam();
    await invite(team.admin, team.orgId, freshEmail());
    await expectSqlError(select(team.admin, "select token_hash from public.invitations"), "42501", /permission denied/);
    await expectSqlError(select(team.admin, "select * from public.invitations"), "42501", /permission denied/);
    await expectSqlError(select(team.owner, "select id from public.invitations where token_hash is not null"), "42501", /permission denied/);
  });

  it("clients cannot insert, update or delete invitations directly (42501)", async () => {
    const team = await createTeam();
    const inv = await invite(team.admin, team.orgId, freshEmail());
    await expectSqlError(
      as(team.owner, (c) =>
        c.query(
          `insert into public.invitations (org_id, email, role, token_hash, expires_at)
           values ($1, 'sneaky@test.local', 'owner', '\\x00', now() + interval '1 day')`,
          [team.orgId],
        ),
      ),
      "42501",
    );
    await expectSqlError(
      as(team.owner, (c) => c.query("update public.invitations set role = 'owner' where id = $1", [inv.invitation_id])),
      "42501",
    );
    await expectSqlError(
      as(team.owner, (c) => c.query("update public.invitations set expires_at = now() + interval '365 days' where id = $1", [inv.invitation_id])),
      "42501",
    );
    await expectSqlError(as(team.owner, (c) => c.query("delete from public.invitations where id = $1", [inv.invitation_id])), "42501");
    const row = await invitationRow(inv.invitation_id);
    expect(row.role).toBe("member");
    const { rows } = await admin.query("select count(*)::int as n from public.invitations where org_id = $1", [team.orgId]);
    expect(rows[0].n).toBe(1);
  });
});

describe("private.purge_dead_invitations", () => {
  it("deletes expired pending and long-revoked invitations, keeps live, recently revoked and accepted ones", async () => {
    const team = await createTeam();
    const live = await invite(team.admin, team.orgId, freshEmail("live"));
    const expired = await invite(team.admin, team.orgId, freshEmail("expired"));
    const oldRevoked = await invite(team.admin, team.orgId, freshEmail("oldrevoked"));
    const newRevoked = await invite(team.admin, team.orgId, freshEmail("newrevoked"));
    const acceptedEmail = freshEmail("accepted");
    const accepted = await invite(team.admin, team.orgId, acceptedEmail);
    const invitee = await createUser({ email: acceptedEmail });
    await rpc(invitee, "accept_invitation", { p_token: accepted.token });
    await rpc(team.admin, "revoke_invitation", { p_invitation_id: newRevoked.invitation_id });
    await rpc(team.admin, "revoke_invitation", { p_invitation_id: oldRevoked.invitation_id });
    // Run as the service role (the worker's role), in a transaction rolled back afterwards, so
    // that other files' invitations come to no lasting harm. The table is locked against other
    // writers for that moment, so the count it returns is exactly the rows it removed.
    const client = await admin.connect();
    try {
      await client.query("begin");
      await client.query("lock table public.invitations in share mode");
      const total = async () => (await client.query("select count(*)::int as n from public.invitations")).rows[0].n as number;
      // Aged inside this transaction only, so no other purge can take them first.
      await client.query("update public.invitations set expires_at = now() - interval '1 second' where id = $1", [expired.invitation_id]);
      await client.query("update public.invitations set revoked_at = now() - interval '31 days' where id = $1", [oldRevoked.invitation_id]);
      // An accepted invitation is kept as a record even once its expiry has passed.
      await client.query("update public.invitations set expires_at = now() - interval '1 day' where id = $1", [accepted.invitation_id]);
      const before = await total();
      await client.query("set local role service_role");
      const { rows } = await client.query("select private.purge_dead_invitations() as n");
      await client.query("reset role");
      expect(rows[0].n).toBeGreaterThanOrEqual(2);
      expect(rows[0].n).toBe(before - (await total()));
      const left = await client.query("select id from public.invitations where org_id = $1", [team.orgId]);
      const ids = left.rows.map((r) => r.id);
      expect(ids).toEqual(expect.arrayContaining([live.invitation_id, newRevoked.invitation_id, accepted.invitation_id]));
      expect(ids).not.toContain(expired.invitation_id);
      expect(ids).not.toContain(oldRevoked.invitation_id);
      expect(ids).toHaveLength(3);
    } finally {
      await client.query("rollback");
      client.release();
    }
  });

  it("authenticated users cannot execute it (42501)", async () => {
    const team = await createTeam();
    const inv = await invite(team.admin, team.orgId, freshEmail());
    // An expired invitation, the kind a purge deletes, that exists only in this transaction.
    const survived = await asWithExpired(inv.invitation_id, team.owner, async (c) => {
      for (const call of ["select private.purge_dead_invitations()", "select private.purge_dead_invitations(interval '0 seconds')"]) {
        await c.query("savepoint attempt");
        await expectSqlError(c.query(call), "42501", /permission denied for function purge_dead_invitations/);
        await c.query("rollback to savepoint attempt");
      }
      await c.query("reset role");
      return (await c.query("select id from public.invitations where id = $1 and expires_at < now()", [inv.invitation_id])).rows;
    });
    expect(survived).toEqual([{ id: inv.invitation_id }]);
  });
});
