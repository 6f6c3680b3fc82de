// The Runway adapter (plain fetch) against the Runway-like fake (scripts/fakes/runway.ts): task
// lifecycle with progress, SAFETY refusals vs failures, HTTP error classes, the idempotency-key
// lookup after a submit timed out, cancel and delete.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRunwayAdapter, parseRunwayTaskRef, RUNWAY_API_VERSION, runwayRatio } from "../../functions/_shared/ai/providers/runway.ts";
import { type AsyncSubmitRequest, type AsyncTask, type ProviderAdapter, ProviderError } from "../../functions/_shared/ai/types.ts";
import { fakeCalls, rejection, scriptFake, type Step, startFakeAi } from "../helpers/fake-ai.ts";

let fake: Awaited<ReturnType<typeof startFakeAi>>;
let n = 0;
const model = () => `gen4_turbo-test-${++n}-${Math.random().toString(36).slice(2, 8)}`;
const key = () => `att_${n}_${Math.random().toString(36).slice(2, 10)}`;

function adapter(opts: { timeoutMs?: number } = {}): ProviderAdapter {
  return createRunwayAdapter({ id: "runway", kind: "runway", baseUrl: `${fake.url}/runway`, apiKey: "key_test", timeoutMs: opts.timeoutMs ?? 3_000 });
}

function request(m: string, k = key(), input: Record<string, unknown> = {}): AsyncSubmitRequest {
  return { model: m, idempotencyKey: k, input: { prompt: "she smiles and waves", image_url: "https://files.plinth.test/face.png", duration_seconds: 10, ratio: "16:9", ...input } };
}

async function until(a: ProviderAdapter, id: string, done: (t: AsyncTask) => boolean): Promise<AsyncTask> {
  const deadline = Date.now() + 5_000;
  for (;;) {
    const t = await a.get!(id);
    if (done(t)) return t;
    if (Date.now() > deadline) throw new Error(`task ${id} still ${t.status}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

beforeAll(async () => {
  fake = await startFakeAi();
});

afterAll(async () => {
  await fake?.close();
});

describe("runway: lifecycle", () => {
  it("creates an image_to_video task and polls PENDING/THROTTLED → RUNNING with progress → SUCCEEDED", async () => {
    const m = model();
    await scriptFake(fake.url, `runway:${m}`, { mode: "ok", throttled: 1, progress: [0.3, 0.8] });
    const a = adapter();
    const k = key();
    const t = await a.submit!(request(m, k, { seed: 42 }));
    expect(t.status).toBe("queued");
    const { id, durationSeconds } = parseRunwayTaskRef(t.providerTaskId);
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    expect(durationSeconds).toBe(10);

    const [create] = await fakeCalls(fake.url, `runway:${m}`);
    expect(create.path).toBe("/runway/v1/image_to_video");
    expect(create.headers.authorization).toBe("Bearer key_test");
    expect(create.headers["x-runway-version"]).toBe(RUNWAY_API_VERSION);
    expect(create.headers["idempotency-key"]).toBe(k);
    expect(create.body).toEqual({ model: m, promptImage: "https://files.plinth.test/face.png", promptText: "she smiles and waves", ratio: "1280:720", duration: 10, seed: 42 });

    expect(await a.get!(t.providerTaskId)).toEqual({ providerTaskId: t.providerTaskId, status: "queued" });
    expect(await a.get!(t.providerTaskId)).toMatchObject({ status: "running", progress: 0.3 });
    expect(await a.get!(t.providerTaskId)).toMatchObject({ status: "running", progress: 0.8 });
    const done = await a.get!(t.providerTaskId);
    expect(done.status).toBe("succeeded");
    expect(done.durationSeconds).toBe(10);
    expect(done.outputs).toEqual([{ url: `${fake.url}/runway/files/${id}.mp4`, mimeType: "video/mp4" }]);
    const res = await fetch(done.outputs![0].url!);
    expect(res.headers.get("content-type")).toBe("video/mp4");
    const bytes = new Uint8Array(await res.arrayBuffer());
    expect(new TextDecoder().decode(bytes.slice(4, 8))).toBe("ftyp");
  });

  it("maps normalized ratios and passes Runway's own pixel ratios through", () => {
    expect(runwayRatio("9:16")).toBe("720:1280");
    expect(runwayRatio("1:1")).toBe("960:960");
    expect(runwayRatio("1584:672")).toBe("1584:672");
    expect(() => runwayRatio("2:1")).toThrow(ProviderError);
  });

  it("refuses a request without an image before calling", async () => {
    const m = model();
    const err = (await rejection(adapter().submit!({ model: m, idempotencyKey: key(), input: { prompt: "x" } }))) as ProviderError;
    expect(err.errorClass).toBe("bad_request");
    expect(await fakeCalls(fake.url, `runway:${m}`)).toHaveLength(0);
  });
});

describe("runway: refused vs failed", () => {
  const cases: [string, Step, string, string][] = [
    ["SAFETY.INPUT.IMAGE", { mode: "refuse" }, "refused", "content_policy"],
    ["SAFETY.OUTPUT.VIDEO", { mode: "refuse", failureCode: "SAFETY.OUTPUT.VIDEO" }, "refused", "content_policy"],
    ["INPUT_PREPROCESSING.SAFETY.TEXT", { mode: "fail", failureCode: "INPUT_PREPROCESSING.SAFETY.TEXT" }, "refused", "content_policy"],
    ["INTERNAL.BAD_OUTPUT.CODE01", { mode: "fail" }, "failed", "server"],
    ["ASSET.INVALID", { mode: "fail", failureCode: "ASSET.INVALID", failure: "Invalid asset" }, "failed", "bad_request"],
  ];
  for (const [code, step, status, errorClass] of cases) {
    it(`${code} → ${status} (${errorClass})`, async () => {
      const m = model();
      await scriptFake(fake.url, `runway:${m}`, { ...step, pollsUntilDone: 1 });
      const a = adapter();
      const t = await a.submit!(request(m));
      const done = await a.get!(t.providerTaskId);
      expect(done).toMatchObject({ status, error: { code, errorClass } });
      expect(done.outputs).toBeUndefined();
      expect(done.durationSeconds).toBeUndefined();
    });
  }
});

describe("runway: HTTP errors", () => {
  const cases: [Step, string, number, number | undefined][] = [
    [{ mode: "rate_limit", retryAfter: 12 }, "rate_limit", 429, 12_000],
    [{ mode: "server_error" }, "server", 500, undefined],
    [{ mode: "server_error", status: 502 }, "overloaded", 502, undefined],
    [{ mode: "overloaded" }, "overloaded", 503, undefined],
    [{ mode: "server_error", status: 504 }, "overloaded", 504, undefined],
    [{ mode: "auth" }, "auth", 401, undefined],
    [{ mode: "not_found" }, "not_found", 404, undefined],
    [{ mode: "bad_request", status: 400, message: "promptImage: Invalid URL" }, "bad_request", 400, undefined],
    [{ mode: "bad_request", status: 400, message: "Content moderation rejected promptText" }, "content_policy", 400, undefined],
  ];
  for (const [step, errorClass, status, retryAfterMs] of cases) {
    it(`submit: ${step.mode} ${status} → ${errorClass}, one request`, async () => {
      const m = model();
      await scriptFake(fake.url, `runway:${m}`, step);
      const err = (await rejection(adapter().submit!(request(m)))) as ProviderError;
      expect(err).toBeInstanceOf(ProviderError);
      expect(err).toMatchObject({ errorClass, details: { status, retryAfterMs } });
      expect(await fakeCalls(fake.url, `runway:${m}`)).toHaveLength(1);
    });
  }

  it("get: a 429 while polling is rate_limit, and the next poll goes through", async () => {
    const m = model();
    await scriptFake(fake.url, `runway:${m}`, { mode: "ok" });
    const a = adapter();
    const t = await a.submit!(request(m));
    await scriptFake(fake.url, `runway:${m}:task`, { mode: "rate_limit", retryAfter: 5 });
    const err = (await rejection(a.get!(t.providerTaskId))) as ProviderError;
    expect(err).toMatchObject({ errorClass: "rate_limit", details: { retryAfterMs: 5_000 } });
    expect((await a.get!(t.providerTaskId)).status).toBe("running");
  });

  it("a missing API version header is refused by the fake (the adapter always sends it)", async () => {
    const res = await fetch(`${fake.url}/runway/v1/tasks/x`, { headers: { authorization: "Bearer key_test" } });
    expect(res.status).toBe(400);
  });
});

describe("runway: outcome unknown", () => {
  it("a submit that timed out is found by its key, is the only task, and completes with its duration", async () => {
    const m = model();
    await scriptFake(fake.url, `runway:${m}`, { mode: "succeed_after_timeout" });
    const a = adapter({ timeoutMs: 250 });
    const k = key();
    const err = (await rejection(a.submit!(request(m, k, { duration_seconds: 5 })))) as ProviderError;
    expect(err).toMatchObject({ errorClass: "timeout", details: { code: "timeout" } });
    expect(await fakeCalls(fake.url, `runway:${m}`)).toHaveLength(1);

    const found = await a.findByIdempotencyKey!(k);
    expect(found).not.toBeNull();
    expect(parseRunwayTaskRef(found!.providerTaskId).durationSeconds).toBe(5);
    const done = await until(a, found!.providerTaskId, (t) => t.status === "succeeded");
    expect(done.durationSeconds).toBe(5);
    expect(done.outputs).toHaveLength(1);

    const lookup = (await (
      await fetch(`${fake.url}/runway/v1/tasks?idempotencyKey=${encodeURIComponent(k)}`, { headers: { authorization: "Bearer key_test", "x-runway-version": RUNWAY_API_VERSION } })
    ).json()) as { tasks: { id: string }[] };
    expect(lookup.tasks.map((t) => t.id)).toEqual([parseRunwayTaskRef(found!.providerTaskId).id]);
  });

  it("finds nothing when the provider never created a task", async () => {
    const m = model();
    await scriptFake(fake.url, `runway:${m}`, { mode: "timeout" });
    const a = adapter({ timeoutMs: 250 });
    const k = key();
    expect(((await rejection(a.submit!(request(m, k)))) as ProviderError).errorClass).toBe("timeout");
    expect(await a.findByIdempotencyKey!(k)).toBeNull();
  });

  it("a lookup the provider cannot answer throws instead of reporting nothing", async () => {
    await scriptFake(fake.url, "runway:list", { mode: "not_found" });
    const err = (await rejection(adapter().findByIdempotencyKey!(key()))) as ProviderError;
    expect(err.errorClass).toBe("not_found");
  });
});

describe("runway: cancel and delete", () => {
  it("cancel stops a running task (DELETE), after which it cannot be fetched", async () => {
    const m = model();
    await scriptFake(fake.url, `runway:${m}`, { mode: "ok", pollsUntilDone: 6 });
    const a = adapter();
    const t = await a.submit!(request(m));
    expect((await a.get!(t.providerTaskId)).status).toBe("running");
    await a.cancel!(t.providerTaskId);
    const calls = await fakeCalls(fake.url, `runway:${m}:task`);
    expect(calls.at(-1)).toMatchObject({ method: "DELETE", path: `/runway/v1/tasks/${parseRunwayTaskRef(t.providerTaskId).id}` });
    expect(((await rejection(a.get!(t.providerTaskId))) as ProviderError).errorClass).toBe("not_found");
    expect(((await rejection(a.cancel!(t.providerTaskId))) as ProviderError).errorClass).toBe("not_found");
  });

  it("delete erases a finished task and its output, and is idempotent", async () => {
    const m = model();
    await scriptFake(fake.url, `runway:${m}`, { mode: "ok", pollsUntilDone: 1 });
    const a = adapter();
    const t = await a.submit!(request(m));
    const done = await a.get!(t.providerTaskId);
    expect((await fetch(done.outputs![0].url!)).status).toBe(200);
    await a.delete!(t.providerTaskId);
    expect((await fetch(done.outputs![0].url!)).status).toBe(404);
    expect(((await rejection(a.get!(t.providerTaskId))) as ProviderError).errorClass).toBe("not_found");
    await expect(a.delete!(t.providerTaskId)).resolves.toBeUndefined();
  });
});
