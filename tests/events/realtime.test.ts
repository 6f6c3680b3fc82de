// Who may receive Broadcasts on which private channel, asked the way Realtime asks
// (realtime.can_receive in sql/platform), and what the outbox sends there.
import { describe, expect, it, vi } from "vitest";
import { gotrueClaims } from "../../scripts/lib/keys.ts";
import { admin, createTeam, createUser, rpc, type TestUser } from "../helpers/db.ts";
import { broadcasts, rtClient, subscribe } from "../helpers/realtime.ts";
import { tokenFor } from "../helpers/supabase.ts";
import { WAIT_MS, waitFor } from "../helpers/wait.ts";

async function canReceive(claims: Record<string, unknown>, topic: string): Promise<boolean> {
  const c = await admin.connect();
  try {
    await c.query("begin");
    const { rows } = await c.query("select realtime.can_receive($1, $2) as ok", [JSON.stringify(claims), topic]);
    await c.query("rollback");
    return rows[0].ok;
  } finally {
    c.release();
  }
}
const user = (u: TestUser, aal: "aal1" | "aal2" = "aal1") => gotrueClaims(u, { aal });

vi.setConfig({ testTimeout: 180_000 });

describe("realtime authorization", () => {
  it("user:<id> — only that user", async () => {
    const [a, b] = [await createUser(), await createUser()];
    expect(await canReceive(user(a), `user:${a.id}`)).toBe(true);
    expect(await canReceive(user(b), `user:${a.id}`)).toBe(false);
    expect(await canReceive({ role: "anon" }, `user:${a.id}`)).toBe(false);
  });

  it("user:<id> — not to an aal1 session of a member of an org that requires MFA, whose notifications it carries", async () => {
    const team = await createTeam();
    expect(await canReceive(user(team.member), `user:${team.member.id}`)).toBe(true);
    await rpc(team.owner, "update_org", { p_org_id: team.orgId, p_require_mfa: true }, { aal: "aal2" });
    expect(await canReceive(user(team.member), `user:${team.member.id}`)).toBe(false);
    expect(await canReceive(user(team.member, "aal2"), `user:${team.member.id}`)).toBe(true);
    // Leaving the MFA org gives the aal1 session its channel back.
    await rpc(team.member, "leave_org", { p_org_id: team.orgId }, { aal: "aal2" });
    expect(await canReceive(user(team.member), `user:${team.member.id}`)).toBe(true);
  });

  it("org:<id> — members of the org, not strangers", async () => {
    const team = await createTeam();
    const stranger = await createUser();
    for (const m of [team.owner, team.admin, team.member, team.viewer]) {
      expect(await canReceive(user(m), `org:${team.orgId}`)).toBe(true);
    }
    expect(await canReceive(user(stranger), `org:${team.orgId}`)).toBe(false);
    expect(await canReceive({ role: "anon" }, `org:${team.orgId}`)).toBe(false);
  });

  it("org:<id> — subject to the org's MFA rule", async () => {
    const team = await createTeam();
    await rpc(team.owner, "update_org", { p_org_id: team.orgId, p_require_mfa: true }, { aal: "aal2" });
    expect(await canReceive(user(team.member), `org:${team.orgId}`)).toBe(false);
    expect(await canReceive(user(team.member, "aal2"), `org:${team.orgId}`)).toBe(true);
  });

  it("malformed and unknown topics are refused", async () => {
    const team = await createTeam();
    for (const topic of [`org:${team.orgId.toUpperCase()}`, `org:${team.orgId}x`, "org:", "doc:whatever", `team:${team.orgId}`]) {
      expect(await canReceive(user(team.owner), topic), topic).toBe(false);
    }
  });
});

describe("the outbox on realtime", () => {
  it("a tenancy change is broadcast privately on org:<id> with the event envelope", async () => {
    const team = await createTeam();
    await rpc(team.owner, "set_member_role", { p_org_id: team.orgId, p_user_id: team.viewer.id, p_role: "member" });
    const rows = await waitFor("the member.role_changed broadcast", async () => {
      const { rows } = await admin.query<{ event: string; private: boolean; payload: Record<string, any> }>(
        "select event, private, payload from realtime.messages where topic = $1 and event = 'member.role_changed'",
        [`org:${team.orgId}`],
      );
      return rows.length ? rows : undefined;
    });
    expect(rows).toHaveLength(1);
    expect(rows[0].private).toBe(true);
    expect(rows[0].payload).toMatchObject({
      type: "member.role_changed",
      org_id: team.orgId,
      actor: { kind: "user", id: team.owner.id },
      data: { user_id: team.viewer.id, old_role: "viewer", new_role: "member" },
    });
  });

  it("sensitive events (invitee emails, key metadata) are not broadcast on the org channel", async () => {
    const team = await createTeam();
    await rpc(team.owner, "create_api_key", { p_org_id: team.orgId, p_name: "quiet", p_scopes: ["content.read"] });
    await rpc(team.owner, "update_org", { p_org_id: team.orgId, p_name: "Loud" });
    // Wait until both events are dispatched, then compare what reached the channel.
    await waitFor("both events to be dispatched", async () =>
      (await admin.query("select 1 from notify.events where org_id = $1 and dispatched_at is null", [team.orgId])).rowCount === 0);
    const { rows } = await admin.query("select event from realtime.messages where topic = $1", [`org:${team.orgId}`]);
    const events = rows.map((r) => r.event);
    expect(events).toContain("org.updated");
    expect(events).not.toContain("api_key.created");
  });

  it("a member's realtime client hears org.updated but never the sensitive api_key.created", async () => {
    const team = await createTeam();
    const sb = await rtClient({ token: await tokenFor(team.member) });
    const ch = sb.channel(`org:${team.orgId}`, { config: { private: true } });
    const inbox = broadcasts(ch);
    await subscribe(ch);
    await rpc(team.owner, "create_api_key", { p_org_id: team.orgId, p_name: "quiet", p_scopes: ["content.read"] });
    await rpc(team.owner, "update_org", { p_org_id: team.orgId, p_name: "Loud" });
    // Events are dispatched in order, so the key's event would have arrived before org.updated.
    const updated = await inbox.waitFor((m) => m.event === "org.updated", WAIT_MS);
    expect(updated.payload).toMatchObject({ type: "org.updated", org_id: team.orgId });
    expect(inbox.items.map((m) => m.event)).not.toContain("api_key.created");
  });
});
