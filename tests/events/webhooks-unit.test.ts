// Pure parts of outbound webhooks: the SSRF guard (both settings of the loopback flag and its
// default), the retry schedule, the 15 s default timeout, and signatures checked by the
// independent standardwebhooks package.
import { Webhook } from "standardwebhooks";
import { afterEach, describe, expect, it, vi } from "vitest";
import { loadConfig } from "../../functions/_shared/config.ts";
import type { Db } from "../../functions/_shared/db/client.ts";
import { type Claim, DELIVERY_TIMEOUT_MS, sendMessage } from "../../functions/_shared/webhooks/delivery.ts";
import { nextAttemptAt, parseRetryAfter, RETRY_DELAYS_MS } from "../../functions/_shared/webhooks/schedule.ts";
import { webhookHeaders } from "../../functions/_shared/webhooks/signature.ts";
import { assertDeliverable, blockedReason, SsrfError } from "../../functions/_shared/webhooks/ssrf.ts";

const resolvesTo = (...addresses: string[]) => async () => addresses;

describe("ssrf: blockedReason", () => {
  it.each([
    ["127.0.0.1", "loopback"], ["127.255.1.2", "loopback"], ["10.1.2.3", "private"], ["172.16.0.1", "private"],
    ["172.31.255.255", "private"], ["192.168.1.1", "private"], ["169.254.169.254", "link-local"], ["100.64.0.1", "CGNAT"],
    ["100.127.255.255", "CGNAT"], ["224.0.0.1", "multicast"], ["0.0.0.0", "unspecified"], ["255.255.255.255", "broadcast"],
    ["240.0.0.1", "reserved"], ["::1", "loopback"], ["::", "unspecified"], ["fe80::1", "link-local"],
    ["fe80::1%eth0", "link-local"], ["fd12:3456::1", "unique-local"], ["fc00::1", "unique-local"], ["ff02::1", "multicast"],
    ["::ffff:127.0.0.1", "loopback"], ["::ffff:7f00:1", "loopback"], ["::ffff:10.0.0.1", "private"],
    ["::ffff:169.254.169.254", "link-local"], ["64:ff9b::a00:1", "private"], ["2002:c0a8:101::1", "private"],
    ["[::1]", "loopback"],
  ])("%s is %s", (ip, reason) => {
    expect(blockedReason(ip)).toBe(reason);
  });

  it.each(["93.184.216.34", "8.8.8.8", "172.32.0.1", "100.128.0.1", "2606:4700::1111", "::ffff:8.8.8.8", "2a00:1450:4001:80b::200e"])(
    "%s is public",
    (ip) => expect(blockedReason(ip)).toBeUndefined(),
  );

  it("rejects garbage", () => expect(blockedReason("not-an-ip")).toBe("unparseable"));
  it("covers the less common forms too: SIIT, NAT64 local-use, Teredo, 6to4 relay", () => {
    expect(blockedReason("::ffff:0:10.0.0.1")).toBe("private");
    expect(blockedReason("64:ff9b:1::a00:1")).toBe("NAT64 local-use");
    expect(blockedReason("2001:0:4136:e378:8000:63bf:3fff:fdd2")).toBe("Teredo");
    expect(blockedReason("192.88.99.1")).toBe("6to4 relay anycast");
    expect(blockedReason("2001:4860:4860::8888")).toBeUndefined();
  });
});

describe("ssrf: assertDeliverable", () => {
  const off = { allowLoopback: false };
  const on = { allowLoopback: true };

  it("flag off: refuses loopback, private, link-local and v6 private addresses", async () => {
    for (const ip of ["127.0.0.1", "10.0.0.5", "169.254.169.254", "::1", "fd00::1", "::ffff:192.168.0.1"]) {
      await expect(assertDeliverable("https://hooks.example.com/x", { ...off, lookup: resolvesTo(ip) })).rejects.toThrow(SsrfError);
    }
    await expect(assertDeliverable("http://127.0.0.1:9/x", off)).rejects.toThrow(/loopback address/);
    await expect(assertDeliverable("http://[::1]:9/x", off)).rejects.toThrow(/loopback/);
  });

  it("refuses a host when any of its addresses is forbidden", async () => {
    await expect(assertDeliverable("https://mixed.example.com", { ...off, lookup: resolvesTo("93.184.216.34", "10.0.0.1") }))
      .rejects.toThrow(/mixed\.example\.com resolves to a private address/);
    // The internal address itself is not echoed into the stored error.
    await expect(assertDeliverable("https://mixed.example.com", { ...off, lookup: resolvesTo("93.184.216.34", "10.0.0.1") }))
      .rejects.not.toThrow(/10\.0\.0\.1/);
  });

  it("flag off: allows public https, refuses plain http even to public hosts", async () => {
    await expect(assertDeliverable("https://hooks.example.com/x", { ...off, lookup: resolvesTo("93.184.216.34") })).resolves.toBeUndefined();
    await expect(assertDeliverable("http://hooks.example.com/x", { ...off, lookup: resolvesTo("93.184.216.34") })).rejects.toThrow(/https/);
  });

  it("flag on: allows loopback (http too) and nothing else private", async () => {
    await expect(assertDeliverable("http://127.0.0.1:9/x", on)).resolves.toBeUndefined();
    await expect(assertDeliverable("http://[::1]:9/x", on)).resolves.toBeUndefined();
    await expect(assertDeliverable("https://x.test", { ...on, lookup: resolvesTo("10.0.0.1") })).rejects.toThrow(/private/);
    await expect(assertDeliverable("https://x.test", { ...on, lookup: resolvesTo("169.254.169.254") })).rejects.toThrow(/link-local/);
    await expect(assertDeliverable("https://x.test", { ...on, lookup: resolvesTo("fe80::1") })).rejects.toThrow(/link-local/);
  });

  it("refuses other schemes, credentials and unresolvable hosts", async () => {
    await expect(assertDeliverable("ftp://example.com", on)).rejects.toThrow(/scheme/);
    await expect(assertDeliverable("https://u:p@example.com", on)).rejects.toThrow(/credentials/);
    await expect(assertDeliverable("https://nx.example.com", { ...on, lookup: async () => { throw Object.assign(new Error("x"), { code: "ENOTFOUND" }); } }))
      .rejects.toThrow(/cannot resolve nx\.example\.com: ENOTFOUND/);
  });
});

describe("retry schedule", () => {
  const now = new Date("2026-01-01T00:00:00Z");
  const delay = (attempt: number, random: number, retryAfterMs?: number) =>
    nextAttemptAt(attempt, now, { random: () => random, retryAfterMs })!.getTime() - now.getTime();

  it("is 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h with ±10% jitter, then gives up", () => {
    expect(RETRY_DELAYS_MS).toEqual([5e3, 3e5, 18e5, 72e5, 18e6, 36e6, 36e6]);
    RETRY_DELAYS_MS.forEach((base, i) => {
      expect(delay(i + 1, 0)).toBe(Math.round(base * 0.9));
      expect(delay(i + 1, 0.5)).toBe(base);
      expect(delay(i + 1, 0.9999999)).toBeCloseTo(base * 1.1, -1);
    });
    expect(nextAttemptAt(8, now)).toBeUndefined();
  });

  it("honours Retry-After when it asks for longer, never for shorter", () => {
    expect(delay(1, 0.5, 60_000)).toBe(60_000);
    expect(delay(3, 0.5, 60_000)).toBe(30 * 60_000);
  });

  it("parses Retry-After as seconds or an HTTP date, capped at a day", () => {
    expect(parseRetryAfter("120", now)).toBe(120_000);
    expect(parseRetryAfter(new Date(now.getTime() + 90_000).toUTCString(), now)).toBe(90_000);
    expect(parseRetryAfter("999999999", now)).toBe(24 * 3600_000);
    expect(parseRetryAfter("soon", now)).toBeUndefined();
    expect(parseRetryAfter(null, now)).toBeUndefined();
  });
});

describe("signatures", () => {
  it("carry one v1 signature per secret, each verified by standardwebhooks", async () => {
    const a = "whsec_" + Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("base64");
    const b = "whsec_" + Buffer.from(crypto.getRandomValues(new Uint8Array(24))).toString("base64");
    const body = JSON.stringify({ hello: "wörld" });
    const headers = await webhookHeaders([a, b], "msg_1", new Date(), body);
    expect(headers["webhook-signature"].split(" ")).toHaveLength(2);
    for (const secret of [a, b]) expect(new Webhook(secret).verify(body, headers)).toEqual({ hello: "wörld" });
    const other = "whsec_" + Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("base64");
    expect(() => new Webhook(other).verify(body, headers)).toThrow();
  });
});

describe("defaults", () => {
  const minimalEnv = { SUPABASE_DB_URL: "postgres://u@127.0.0.1:5432/db", SUPABASE_URL: "http://127.0.0.1:54321" };

  it("PLINTH_WEBHOOKS_ALLOW_LOOPBACK is off unless set to true", () => {
    expect(loadConfig(minimalEnv).PLINTH_WEBHOOKS_ALLOW_LOOPBACK).toBe(false);
    expect(loadConfig({ ...minimalEnv, PLINTH_WEBHOOKS_ALLOW_LOOPBACK: "false" }).PLINTH_WEBHOOKS_ALLOW_LOOPBACK).toBe(false);
    expect(loadConfig({ ...minimalEnv, PLINTH_WEBHOOKS_ALLOW_LOOPBACK: "true" }).PLINTH_WEBHOOKS_ALLOW_LOOPBACK).toBe(true);
    expect(() => loadConfig({ ...minimalEnv, PLINTH_WEBHOOKS_ALLOW_LOOPBACK: "perhaps" })).toThrow(/PLINTH_WEBHOOKS_ALLOW_LOOPBACK/);
  });

  afterEach(() => vi.restoreAllMocks());

  it("a delivery without a timeout of its own gives up after 15 s (run here at 1/100 of the time)", async () => {
    expect(DELIVERY_TIMEOUT_MS).toBe(15_000);
    // The real timer, shortened a hundredfold, so the test does not wait 15 s; the delay asked for is recorded.
    const asked: number[] = [];
    const timeout = AbortSignal.timeout.bind(AbortSignal);
    vi.spyOn(AbortSignal, "timeout").mockImplementation((ms: number) => (asked.push(ms), timeout(ms / 100)));
    // A receiver that never answers: the request ends only when its signal aborts.
    const hang: typeof fetch = (_url, init) => new Promise((_, reject) => {
      const signal = init!.signal!;
      signal.addEventListener("abort", () => reject(signal.reason));
    });
    const claim: Claim = {
      messageId: crypto.randomUUID(),
      leaseId: crypto.randomUUID(),
      orgId: crypto.randomUUID(),
      endpointId: crypto.randomUUID(),
      url: "http://127.0.0.1:9/hooks",
      attempt: 1,
      secrets: ["whsec_" + Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("base64")],
      event: {
        id: crypto.randomUUID(), seq: 1, org_id: crypto.randomUUID(), type: "webhook.test", schema_version: 1,
        subject_kind: "webhook_endpoint", subject_id: "x", actor_user_id: null, actor_api_key_id: null,
        payload: {}, occurred_at: new Date().toISOString(),
      },
    };
    const deps = { db: {} as Db, policy: { allowLoopback: true }, schedule: async () => {}, fetch: hang };
    const result = await sendMessage(deps, claim);
    expect(asked).toEqual([15_000]);
    expect(result).toMatchObject({ error: "timed out after 15000 ms" });
    expect(result.statusCode).toBeUndefined();
  });
});
