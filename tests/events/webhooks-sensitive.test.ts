// Sensitive event types (invitee emails, key metadata) travel to an endpoint only when its
// filter names them, and naming them takes members.manage, as reading them in the feed does.
import { describe, expect, it } from "vitest";
import { addIntegrator } from "../helpers/webhooks.ts";
import { admin, createTeam, expectSqlError, rpc } from "../helpers/db.ts";

const url = "https://hooks.example.com/in";

describe("sensitive event types over webhooks", () => {
  it("naming a sensitive type needs members.manage; other types only webhooks.manage", async () => {
    const team = await createTeam();
    const integrator = await addIntegrator(team.orgId);
    await expectSqlError(
      rpc(integrator, "create_webhook_endpoint", { p_org_id: team.orgId, p_url: url, p_event_types: ["member.invited"] }),
      "42501",
      /members.manage/,
    );
    const [ok] = await rpc<{ endpoint_id: string }>(integrator, "create_webhook_endpoint", {
      p_org_id: team.orgId, p_url: url, p_event_types: ["member.joined"],
    });
    await expectSqlError(
      rpc(integrator, "update_webhook_endpoint", { p_endpoint_id: ok.endpoint_id, p_event_types: ["api_key.created"] }),
      "42501",
    );
    const [mine] = await rpc<{ endpoint_id: string }>(team.admin, "create_webhook_endpoint", {
      p_org_id: team.orgId, p_url: url, p_event_types: ["member.invited"],
    });
    expect(mine.endpoint_id).toBeTruthy();
    const { rows } = await admin.query("select count(*)::int as n from notify.webhook_endpoints where org_id = $1", [team.orgId]);
    expect(rows[0].n).toBe(2);
  });

  it("an empty filter gets every non-sensitive event but no sensitive one; a naming filter gets it", async () => {
    const team = await createTeam();
    const [all] = await rpc<{ endpoint_id: string }>(team.admin, "create_webhook_endpoint", { p_org_id: team.orgId, p_url: url });
    const [named] = await rpc<{ endpoint_id: string }>(team.admin, "create_webhook_endpoint", {
      p_org_id: team.orgId, p_url: url, p_event_types: ["member.invited"],
    });
    await rpc(team.admin, "invite_member", { p_org_id: team.orgId, p_email: "secret@else.test" });
    await rpc(team.admin, "update_org", { p_org_id: team.orgId, p_name: "Visible" });
    const typesFor = async (endpoint: string) =>
      (await admin.query(
        `select e.type from notify.webhook_messages m join notify.events e on e.id = m.event_id where m.endpoint_id = $1 order by e.seq`,
        [endpoint],
      )).rows.map((r) => r.type);
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline && !((await typesFor(all.endpoint_id)).includes("org.updated") && (await typesFor(named.endpoint_id)).length)) {
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(await typesFor(all.endpoint_id)).toContain("org.updated");
    expect(await typesFor(all.endpoint_id)).not.toContain("member.invited");
    expect(await typesFor(named.endpoint_id)).toEqual(["member.invited"]);
  });
});

describe("the plan's webhook endpoint limit", () => {
  it("a free org gets one endpoint; the second is refused with PT402 and nothing is created", async () => {
    const team = await createTeam("Free hooks", { plan: null });
    await rpc(team.admin, "create_webhook_endpoint", { p_org_id: team.orgId, p_url: url });
    await expectSqlError(rpc(team.admin, "create_webhook_endpoint", { p_org_id: team.orgId, p_url: url }), "PT402", /1 webhook endpoints/);
    const { rows } = await admin.query("select count(*)::int as n from notify.webhook_endpoints where org_id = $1", [team.orgId]);
    expect(rows[0].n).toBe(1);
  });
});
