// One-click unsubscribe over HTTP on the real Deno api function: GET shows a page and changes
// nothing, POST (RFC 8058) turns the channel off; forged, tampered, expired and malformed
// tokens are 400 and change nothing.
import { beforeEach, describe, expect, it } from "vitest";
import { signUnsubscribeToken } from "../../functions/_shared/notifications/token.ts";
import { LOCAL_UNSUBSCRIBE_SECRET } from "../../scripts/lib/stack.ts";
import { admin, createUser, type TestUser } from "../helpers/db.ts";
import { call, expectError } from "../helpers/http.ts";

const secret = process.env.PLINTH_UNSUBSCRIBE_SECRET ?? LOCAL_UNSUBSCRIBE_SECRET;
const ONE_CLICK = "List-Unsubscribe=One-Click";
const form = { "content-type": "application/x-www-form-urlencoded" };

let user: TestUser;
beforeEach(async () => {
  user = await createUser();
});

const prefs = (u: TestUser) =>
  admin.query("select type, channel, enabled from notify.notification_preferences where user_id = $1 order by 1, 2", [u.id]).then((r) => r.rows);
const token = (u: TestUser, type: string | null = "member.role_changed", channel: "email" | "email_digest" | "in_app" = "email", expiresAt?: Date) =>
  signUnsubscribeToken(secret, { userId: u.id, type, channel }, expiresAt);
const url = (t: string) => `/api/unsubscribe?token=${encodeURIComponent(t)}`;

describe("unsubscribe links", () => {
  it("GET shows a confirmation page and changes nothing", async () => {
    const res = await call(url(await token(user)));
    expect(res.status, res.raw).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/text\/html/);
    expect(res.headers.get("cache-control")).toBe("no-store");
    expect(res.raw).toContain('name="List-Unsubscribe" value="One-Click"');
    expect(res.raw).toContain("member.role_changed emails");
    expect(await prefs(user)).toEqual([]);
  });

  it("POST one-click turns that type × channel off, and only that", async () => {
    const res = await call(url(await token(user)), { method: "POST", headers: form, body: ONE_CLICK });
    expect(res.status, res.raw).toBe(200);
    expect(res.body).toEqual({ unsubscribed: true, type: "member.role_changed", channel: "email" });
    expect(await prefs(user)).toEqual([{ type: "member.role_changed", channel: "email", enabled: false }]);
    // Repeating it is harmless.
    expect((await call(url(await token(user)), { method: "POST", headers: form, body: ONE_CLICK })).status).toBe(200);
  });

  it("the form on the page gets an HTML answer", async () => {
    const res = await call(url(await token(user)), { method: "POST", headers: { ...form, accept: "text/html" }, body: ONE_CLICK });
    expect(res.status).toBe(200);
    expect(res.raw).toMatch(/no longer get member\.role_changed emails/);
  });

  it("the digest's link turns the digest off for every type", async () => {
    const res = await call(url(await token(user, null, "email_digest")), { method: "POST", headers: form, body: ONE_CLICK });
    expect(res.status, res.raw).toBe(200);
    const rows = await prefs(user);
    expect(rows.length).toBeGreaterThanOrEqual(4);
    expect(rows.every((r) => r.channel === "email_digest" && r.enabled === false)).toBe(true);
  });

  describe("bad tokens are 400 and change nothing", () => {
    const refused = async (t: string) => {
      expectError(await call(url(t)), 400, "invalid_token");
      expectError(await call(url(t), { method: "POST", headers: form, body: ONE_CLICK }), 400, "invalid_token");
      expect(await prefs(user)).toEqual([]);
    };

    it("forged: signed with another secret", async () => {
      await refused(await signUnsubscribeToken("x".repeat(48), { userId: user.id, type: "member.role_changed", channel: "email" }));
    });

    it("tampered: claims changed (another user), signature kept", async () => {
      const victim = await createUser();
      const [body, sig] = (await token(user)).split(".");
      const claims = JSON.parse(Buffer.from(body, "base64url").toString());
      const forged = Buffer.from(JSON.stringify({ ...claims, u: victim.id })).toString("base64url");
      await refused(`${forged}.${sig}`);
      expect(await prefs(victim)).toEqual([]);
    });

    it("expired", async () => {
      const res = await call(url(await token(user, "member.role_changed", "email", new Date(Date.now() - 1000))));
      expectError(res, 400, "invalid_token");
      expect(res.body.error.message).toMatch(/expired/);
      await refused(await token(user, "member.role_changed", "email", new Date(Date.now() - 1000)));
    });

    it("malformed", async () => {
      await refused("not-a-token-at-all-really");
      await refused("abc.def.ghi.jkl.mno.pqr");
      // Base64url characters, but a length no base64 can have (atob throws on it).
      await refused("aaaaaaaaaaaaaaaa.a");
    });
  });

  it("missing token, or a POST without the one-click body, is 400", async () => {
    expectError(await call("/api/unsubscribe"), 400, "invalid_request");
    expectError(await call(url(await token(user)), { method: "POST", headers: form, body: "List-Unsubscribe=Nope" }), 400, "invalid_request");
    expect(await prefs(user)).toEqual([]);
  });
});
