// What the adapter tests against the AI fakes share: a connection to one provider's fake, and
// the cases every adapter of a kind must pass the same way, written once. A one-shot call (chat,
// image) fails in exactly one HTTP request, reads Retry-After and times out without a retry; a
// chat stream that completes, is cut, fails or stalls ends as the router expects; an async-task
// adapter classifies submit failures, resolves a lost submit by its key, and erases tasks. Each
// provider's test file keeps its own wire details (error tables, codes, messages).
import { randomUUID } from "node:crypto";
import { expect } from "vitest";
import {
  type AsyncSubmitRequest,
  type AsyncTask,
  type ChatRequest,
  type ChatResult,
  type ChatStreamEvent,
  type ProviderAdapter,
  type ProviderConnection,
  ProviderError,
  type ProviderKind,
  type TokenUsage,
} from "../../functions/_shared/ai/types.ts";
import { drain, fakeCalls, providerError, type RecordedCall, rejection, scriptFake, type Step } from "./fake-ai.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A connection to one provider's fake, mounted at `path` on the fake server. */
export function fakeConnection(fake: { url: string }, kind: ProviderKind, path: string, apiKey: string, over: Partial<ProviderConnection> = {}): ProviderConnection {
  return { id: kind, kind, baseUrl: `${fake.url}${path}`, apiKey, timeoutMs: 5_000, ...over };
}

/** An idempotency key of our own, as the router makes one per attempt. */
export const attemptKey = () => `att_${randomUUID()}`;

// ---------------------------------------------------------------------------- one-shot calls

/** A one-shot call of an adapter: each case scripts the fake for a model of its own. */
export interface CallTarget<R = unknown> {
  fake: { url: string };
  model: (tag: string) => string;
  key: (model: string) => string;
  call: (model: string, conn?: Partial<ProviderConnection>, signal?: AbortSignal) => Promise<R>;
}

/** What the call returns when the fake answers a fresh model with `step`. */
export async function scriptedCall<R>(t: CallTarget<R>, step: Step, conn?: Partial<ProviderConnection>): Promise<R> {
  const model = t.model("scripted");
  await scriptFake(t.fake.url, t.key(model), step);
  return await t.call(model, conn);
}

/** The call fails as `expected` after exactly one HTTP request: no retry inside the SDK. */
export async function expectFailureInOneCall(
  t: CallTarget,
  step: Step,
  expected: { errorClass: string; status?: number; code?: string; providerRequestId?: string },
): Promise<ProviderError> {
  const model = t.model("err");
  await scriptFake(t.fake.url, t.key(model), step);
  const err = await providerError(t.call(model));
  expect(err.errorClass).toBe(expected.errorClass);
  expect(err.details.status).toBe(expected.status);
  expect(err.details.code).toBe(expected.code);
  expect(err.details.providerRequestId).toBe(expected.providerRequestId);
  expect(await fakeCalls(t.fake.url, t.key(model))).toHaveLength(1);
  return err;
}

/** A 429 with the Retry-After headers of `retry` is rate_limit with retryAfterMs `ms`. */
export async function expectRetryAfter(t: CallTarget, retry: Record<string, unknown>, ms: number | undefined): Promise<void> {
  const model = t.model("retry");
  await scriptFake(t.fake.url, t.key(model), { mode: "rate_limit", ...retry });
  const err = await providerError(t.call(model));
  expect(err.errorClass).toBe("rate_limit");
  expect(err.details.retryAfterMs).toBe(ms);
}

/** A provider that never answers: timeout after conn.timeoutMs (300), and no second request. */
export async function expectTimeoutWithoutRetry(t: CallTarget): Promise<ProviderError> {
  const model = t.model("timeout");
  await scriptFake(t.fake.url, t.key(model), { mode: "timeout" });
  const started = Date.now();
  const err = await providerError(t.call(model, { timeoutMs: 300 }));
  expect(err.errorClass).toBe("timeout");
  expect(Date.now() - started).toBeLessThan(3_000);
  await sleep(400); // a retry would have arrived by now
  expect(await fakeCalls(t.fake.url, t.key(model))).toHaveLength(1);
  return err;
}

/** The caller's abort ends the call as a timeout. */
export async function expectAbortAsTimeout(t: CallTarget): Promise<ProviderError> {
  const model = t.model("abort");
  await scriptFake(t.fake.url, t.key(model), { mode: "timeout" });
  const ctrl = new AbortController();
  setTimeout(() => ctrl.abort(), 100);
  const err = await providerError(t.call(model, {}, ctrl.signal));
  expect(err.errorClass).toBe("timeout");
  return err;
}

// ---------------------------------------------------------------------------- chat streams

export interface StreamTarget extends Omit<CallTarget, "call"> {
  stream: (model: string, conn?: Partial<ProviderConnection>) => AsyncIterable<ChatStreamEvent>;
}

/** What the stream yields (and throws) when the fake answers a fresh model with `step`. */
export async function scriptedStream(t: StreamTarget, step: Step): Promise<{ events: ChatStreamEvent[]; error?: unknown }> {
  const model = t.model("scripted");
  await scriptFake(t.fake.url, t.key(model), step);
  return await drain(t.stream(model));
}

/** An adapter's chat and chatStream as the cases call them (`adapter` makes it for a connection override). */
export function chatTarget(
  fake: { url: string },
  model: (tag: string) => string,
  key: (model: string) => string,
  adapter: (over?: Partial<ProviderConnection>) => ProviderAdapter,
  request: (model: string) => ChatRequest,
): CallTarget<ChatResult> & StreamTarget {
  return {
    fake,
    model,
    key,
    call: (m, over, signal) => adapter(over).chat!(request(m), signal),
    stream: (m, over) => adapter(over).chatStream!(request(m)),
  };
}

const deltaText = (events: ChatStreamEvent[]) => events.flatMap((e) => (e.type === "delta" ? [e.text] : []));

/**
 * A complete stream of a six-word text in three chunks (`script` adds the provider's wire
 * details): `start` (with `start`'s fields) first, the text in three deltas, one cumulative usage
 * event and done(stop), both with `usage`. Returns the request the fake received.
 */
export async function expectCompleteStream(
  t: StreamTarget,
  script: Record<string, unknown>,
  expected: { start: Record<string, unknown>; usage: TokenUsage },
): Promise<RecordedCall> {
  const model = t.model("stream");
  const text = "one two three four five six";
  await scriptFake(t.fake.url, t.key(model), { mode: "ok", text, chunks: 3, ...script });
  const { events, error } = await drain(t.stream(model));
  expect(error).toBeUndefined();
  expect(events[0]).toEqual({ type: "start", ...expected.start, providerModel: model });
  expect(deltaText(events)).toHaveLength(3);
  expect(deltaText(events).join("")).toBe(text);
  expect(events.filter((e) => e.type === "usage")).toEqual([{ type: "usage", usage: expected.usage }]);
  expect(events.at(-1)).toEqual({ type: "done", finishReason: "stop", usage: expected.usage });
  const [call] = await fakeCalls(t.fake.url, t.key(model));
  return call;
}

/**
 * A stream cut after two deltas (`cutMode` destroy or end) ends without error, usage or done,
 * having delivered a proper prefix of the text; `extra` goes into the script. Returns the events.
 */
export async function expectCutStream(t: StreamTarget, cutMode: string, extra: Record<string, unknown> = {}): Promise<ChatStreamEvent[]> {
  const model = t.model("cut");
  const text = "alpha beta gamma delta epsilon zeta";
  await scriptFake(t.fake.url, t.key(model), { mode: "stream_cut", chunks: 2, text, cutMode, ...extra });
  const { events, error } = await drain(t.stream(model));
  expect(error).toBeUndefined();
  const streamed = deltaText(events).join("");
  expect(deltaText(events)).toHaveLength(2);
  expect(text.startsWith(streamed) && streamed.length > 0 && streamed.length < text.length).toBe(true);
  expect(events.some((e) => e.type === "done" || e.type === "usage")).toBe(false);
  return events;
}

/** An error event after one delta throws a ProviderError (returned for its details). */
export async function expectMidStreamError(t: StreamTarget, extra: Record<string, unknown> = {}): Promise<ProviderError> {
  const model = t.model("serr");
  await scriptFake(t.fake.url, t.key(model), { mode: "stream_error", chunks: 1, ...extra });
  const { events, error } = await drain(t.stream(model));
  expect(deltaText(events)).toHaveLength(1);
  expect(error).toBeInstanceOf(ProviderError);
  return error as ProviderError;
}

/** A stream request the provider refuses with `step` yields nothing and throws `expected`, in one request. */
export async function expectStreamRefused(t: StreamTarget, step: Step, expected: Record<string, unknown>): Promise<void> {
  const model = t.model("srefused");
  await scriptFake(t.fake.url, t.key(model), step);
  const { events, error } = await drain(t.stream(model));
  expect(events).toEqual([]);
  expect(error).toMatchObject(expected);
  expect(await fakeCalls(t.fake.url, t.key(model))).toHaveLength(1);
}

/** A stream request that gets no answer times out once (conn.timeoutMs 300), without retry. */
export async function expectStreamTimeoutWithoutRetry(t: StreamTarget): Promise<void> {
  const model = t.model("stimeout");
  await scriptFake(t.fake.url, t.key(model), { mode: "timeout" });
  const { events, error } = await drain(t.stream(model, { timeoutMs: 300 }));
  expect(events).toEqual([]);
  expect((error as ProviderError).errorClass).toBe("timeout");
  await sleep(400);
  expect(await fakeCalls(t.fake.url, t.key(model))).toHaveLength(1);
}

/**
 * A stream whose chunks come 2 s apart stops at the inactivity timeout (300 ms) instead of
 * hanging: only start was yielded, in one request. Returns the timeout error.
 */
export async function expectStalledStreamTimeout(t: StreamTarget, extra: Record<string, unknown> = {}): Promise<ProviderError> {
  const model = t.model("stall");
  await scriptFake(t.fake.url, t.key(model), { mode: "ok", chunkDelayMs: 2_000, ...extra });
  const started = Date.now();
  const { events, error } = await drain(t.stream(model, { timeoutMs: 300 }));
  expect(Date.now() - started).toBeLessThan(1_900);
  expect(events.map((e) => e.type)).toEqual(["start"]);
  expect((error as ProviderError).errorClass).toBe("timeout");
  expect(await fakeCalls(t.fake.url, t.key(model))).toHaveLength(1);
  return error as ProviderError;
}

// ---------------------------------------------------------------------------- async tasks

/** An async-task adapter and its fake: each case scripts a request of its own (`name`). */
export interface TaskTarget {
  fake: { url: string };
  adapter: (over?: Partial<ProviderConnection>) => ProviderAdapter;
  /** A fresh script name (a model, or D-ID's talk name). */
  name: () => string;
  /** The fake's script key for creates of that name. */
  key: (name: string) => string;
  /** The request for that name (`input` adds to or replaces the default input). */
  request: (name: string, idempotencyKey?: string, input?: Record<string, unknown>) => AsyncSubmitRequest;
}

/** Polls a task until `done` says so; fails after `timeoutMs`. */
export async function pollTask(a: ProviderAdapter, id: string, done: (t: AsyncTask) => boolean, opts: { timeoutMs?: number; everyMs?: number } = {}): Promise<AsyncTask> {
  const deadline = Date.now() + (opts.timeoutMs ?? 5_000);
  for (;;) {
    const t = await a.get!(id);
    if (done(t)) return t;
    if (Date.now() > deadline) throw new Error(`task ${id} still ${t.status}`);
    await sleep(opts.everyMs ?? 20);
  }
}

/** Submits a fresh request whose fake follows `step`: the adapter, the request's name and the task. */
export async function submitScripted(t: TaskTarget, step: Step): Promise<{ a: ProviderAdapter; name: string; task: AsyncTask }> {
  const name = t.name();
  await scriptFake(t.fake.url, t.key(name), step);
  const a = t.adapter();
  return { a, name, task: await a.submit!(t.request(name)) };
}

/** A submit the fake answers with `step` fails as `expected`, after exactly one request. */
export async function expectSubmitFailure(
  t: TaskTarget,
  step: Step,
  expected: { errorClass: string; status: number; retryAfterMs?: number },
): Promise<void> {
  const name = t.name();
  await scriptFake(t.fake.url, t.key(name), step);
  const err = await providerError(t.adapter().submit!(t.request(name)));
  expect(err.errorClass).toBe(expected.errorClass);
  expect(err.details.status).toBe(expected.status);
  expect(err.details.retryAfterMs).toBe(expected.retryAfterMs);
  expect(await fakeCalls(t.fake.url, t.key(name))).toHaveLength(1);
}

/**
 * A submit whose answer is lost although the provider made the task (succeed_after_timeout, with
 * `step`'s options): it times out after one request, with no second one. Returns the adapter,
 * the name and idempotency key it went out with, and the error.
 */
export async function expectLostSubmit(
  t: TaskTarget,
  opts: { timeoutMs?: number; step?: Record<string, unknown>; input?: Record<string, unknown> } = {},
): Promise<{ a: ProviderAdapter; name: string; k: string; err: ProviderError }> {
  const name = t.name();
  await scriptFake(t.fake.url, t.key(name), { mode: "succeed_after_timeout", ...opts.step });
  const a = t.adapter({ timeoutMs: opts.timeoutMs ?? 250 });
  const k = attemptKey();
  const err = await providerError(a.submit!(t.request(name, k, opts.input)));
  expect(err.errorClass).toBe("timeout");
  expect(await fakeCalls(t.fake.url, t.key(name))).toHaveLength(1);
  return { a, name, k, err };
}

/** A submit that timed out before the provider made anything: the lookup by its key finds nothing. */
export async function expectNothingFoundAfterLostSubmit(t: TaskTarget): Promise<void> {
  const name = t.name();
  await scriptFake(t.fake.url, t.key(name), { mode: "timeout" });
  const a = t.adapter({ timeoutMs: 250 });
  const k = attemptKey();
  expect(((await rejection(a.submit!(t.request(name, k)))) as ProviderError).errorClass).toBe("timeout");
  expect(await a.findByIdempotencyKey!(k)).toBeNull();
}

/** A lookup whose list request the fake fails with `step` throws (it is no confirmed absence); its class. */
export async function lookupFailureClass(t: TaskTarget, listKey: string, step: Step): Promise<string> {
  await scriptFake(t.fake.url, listKey, step);
  return (await providerError(t.adapter().findByIdempotencyKey!(attemptKey()))).errorClass;
}

/** delete erases a finished task and its output, and deleting it again is no error. */
export async function expectDeleteErases(t: TaskTarget): Promise<void> {
  const { a, task } = await submitScripted(t, { mode: "ok", pollsUntilDone: 1 });
  const done = await a.get!(task.providerTaskId);
  expect((await fetch(done.outputs![0].url!)).status).toBe(200);
  await a.delete!(task.providerTaskId);
  expect((await fetch(done.outputs![0].url!)).status).toBe(404);
  expect(((await rejection(a.get!(task.providerTaskId))) as ProviderError).errorClass).toBe("not_found");
  await expect(a.delete!(task.providerTaskId)).resolves.toBeUndefined();
}
