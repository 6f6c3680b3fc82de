// The Runway adapter (plain fetch) against the Runway-like fake (scripts/fakes/runway.ts): task
// lifecycle with progress, SAFETY refusals vs failures, HTTP error classes, the idempotency-key
// lookup after a submit timed out, cancel and delete.
import { describe, expect, it } from "vitest";
import { createRunwayAdapter, parseRunwayTaskRef, RUNWAY_API_VERSION, runwayRatio } from "../../functions/_shared/ai/providers/runway.ts";
import { type AsyncSubmitRequest, type ProviderAdapter, type ProviderConnection, ProviderError } from "../../functions/_shared/ai/types.ts";
import * as cases from "../helpers/adapter-cases.ts";
import { fakeCalls, rejection, scriptFake, type Step, useFakeAi } from "../helpers/fake-ai.ts";

const fake = useFakeAi();
let n = 0;
const model = () => `gen4_turbo-test-${++n}-${Math.random().toString(36).slice(2, 8)}`;

function adapter(over: Partial<ProviderConnection> = {}): ProviderAdapter {
  return createRunwayAdapter(cases.fakeConnection(fake, "runway", "/runway", "key_test", { timeoutMs: 3_000, ...over }));
}

function request(m: string, k = cases.attemptKey(), input: Record<string, unknown> = {}): AsyncSubmitRequest {
  return { model: m, idempotencyKey: k, input: { prompt: "she smiles and waves", image_url: "https://files.plinth.test/face.png", duration_seconds: 10, ratio: "16:9", ...input } };
}

const tasks: cases.TaskTarget = { fake, adapter, name: model, key: (m) => `runway:${m}`, request };

describe("runway: lifecycle", () => {
  it("creates an image_to_video task and polls PENDING/THROTTLED → RUNNING with progress → SUCCEEDED", async () => {
    const m = model();
    await scriptFake(fake.url, `runway:${m}`, { mode: "ok", throttled: 1, progress: [0.3, 0.8] });
    const a = adapter();
    const k = cases.attemptKey();
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
    const err = (await rejection(adapter().submit!({ model: m, idempotencyKey: cases.attemptKey(), input: { prompt: "x" } }))) as ProviderError;
    expect(err.errorClass).toBe("bad_request");
    expect(await fakeCalls(fake.url, `runway:${m}`)).toHaveLength(0);
  });
});

describe("runway: refused vs failed", () => {
  const outcomes: [string, Step, string, string][] = [
    ["SAFETY.INPUT.IMAGE", { mode: "refuse" }, "refused", "content_policy"],
    ["SAFETY.OUTPUT.VIDEO", { mode: "refuse", failureCode: "SAFETY.OUTPUT.VIDEO" }, "refused", "content_policy"],
    ["INPUT_PREPROCESSING.SAFETY.TEXT", { mode: "fail", failureCode: "INPUT_PREPROCESSING.SAFETY.TEXT" }, "refused", "content_policy"],
    ["INTERNAL.BAD_OUTPUT.CODE01", { mode: "fail" }, "failed", "server"],
    ["ASSET.INVALID", { mode: "fail", failureCode: "ASSET.INVALID", failure: "Invalid asset" }, "failed", "bad_request"],
  ];
  for (const [code, step, status, errorClass] of outcomes) {
    it(`${code} → ${status} (${errorClass})`, async () => {
      const { a, task: t } = await cases.submitScripted(tasks, { ...step, pollsUntilDone: 1 });
      const done = await a.get!(t.providerTaskId);
      expect(done).toMatchObject({ status, error: { code, errorClass } });
      expect(done.outputs).toBeUndefined();
      expect(done.durationSeconds).toBeUndefined();
    });
  }
});

describe("runway: HTTP errors", () => {
  const errors: [Step, string, number, number | undefined][] = [
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
  for (const [step, errorClass, status, retryAfterMs] of errors) {
    it(`submit: ${step.mode} ${status} → ${errorClass}, one request`, async () => {
      await cases.expectSubmitFailure(tasks, step, { errorClass, status, retryAfterMs });
    });
  }

  it("get: a 429 while polling is rate_limit, and the next poll goes through", async () => {
    const { a, name: m, task: t } = await cases.submitScripted(tasks, { mode: "ok" });
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
    const { a, k, err } = await cases.expectLostSubmit(tasks, { input: { duration_seconds: 5 } });
    expect(err.details.code).toBe("timeout");

    const found = await a.findByIdempotencyKey!(k);
    expect(found).not.toBeNull();
    expect(parseRunwayTaskRef(found!.providerTaskId).durationSeconds).toBe(5);
    const done = await cases.pollTask(a, found!.providerTaskId, (t) => t.status === "succeeded");
    expect(done.durationSeconds).toBe(5);
    expect(done.outputs).toHaveLength(1);

    const lookup = (await (
      await fetch(`${fake.url}/runway/v1/tasks?idempotencyKey=${encodeURIComponent(k)}`, { headers: { authorization: "Bearer key_test", "x-runway-version": RUNWAY_API_VERSION } })
    ).json()) as { tasks: { id: string }[] };
    expect(lookup.tasks.map((t) => t.id)).toEqual([parseRunwayTaskRef(found!.providerTaskId).id]);
  });

  it("finds nothing when the provider never created a task", async () => {
    await cases.expectNothingFoundAfterLostSubmit(tasks);
  });

  it("a lookup the provider cannot answer throws instead of reporting nothing", async () => {
    expect(await cases.lookupFailureClass(tasks, "runway:list", { mode: "not_found" })).toBe("not_found");
  });
});

describe("runway: cancel and delete", () => {
  it("cancel stops a running task (DELETE), after which it cannot be fetched", async () => {
    const { a, name: m, task: t } = await cases.submitScripted(tasks, { mode: "ok", pollsUntilDone: 6 });
    expect((await a.get!(t.providerTaskId)).status).toBe("running");
    await a.cancel!(t.providerTaskId);
    const calls = await fakeCalls(fake.url, `runway:${m}:task`);
    expect(calls.at(-1)).toMatchObject({ method: "DELETE", path: `/runway/v1/tasks/${parseRunwayTaskRef(t.providerTaskId).id}` });
    expect(((await rejection(a.get!(t.providerTaskId))) as ProviderError).errorClass).toBe("not_found");
    expect(((await rejection(a.cancel!(t.providerTaskId))) as ProviderError).errorClass).toBe("not_found");
  });

  it("delete erases a finished task and its output, and is idempotent", async () => {
    await cases.expectDeleteErases(tasks);
  });
});
