// The AI fakes' control API (scripts/fakes/lib/fake-server.ts): queue scripted steps for a key
// ("<provider>:<model>"), read the requests a key received, forget a key. Also a file's own
// fake server, and reading what a stream yielded or a call threw.
import { afterAll, beforeAll, expect } from "vitest";
import { startFakeAi } from "../../scripts/fakes/ai.ts";
import type { FakeServer, RecordedCall, Step } from "../../scripts/fakes/lib/fake-server.ts";
import { ProviderError } from "../../functions/_shared/ai/types.ts";

export type { RecordedCall, Step };

/** Starts a fake server for this test file (closed after it); read `url` in tests and hooks. */
export function useFakeAi(): { readonly url: string } {
  let server: FakeServer | undefined;
  beforeAll(async () => {
    server = await startFakeAi();
  });
  afterAll(async () => {
    await server?.close();
  });
  return {
    get url() {
      if (!server) throw new Error("the AI fake starts in beforeAll");
      return server.url;
    },
  };
}

async function control<T>(baseUrl: string, method: string, path: string, body?: unknown): Promise<T> {
  const res = await fetch(`${baseUrl}${path}`, {
    method,
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`fake AI ${method} ${path}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

/**
 * Queues steps for a key; each matching request takes the next one (then { mode: "ok" }).
 * Typed loosely: the async providers' fakes also take state steps that carry no mode.
 */
export function scriptFake(
  baseUrl: string,
  key: string,
  steps: Record<string, unknown> | Record<string, unknown>[],
): Promise<{ key: string; queued: number }> {
  return control(baseUrl, "POST", "/__fake/script", { key, steps: Array.isArray(steps) ? steps : [steps] });
}

/** Requests recorded under a key, oldest first. */
export function fakeCalls(baseUrl: string, key: string): Promise<RecordedCall[]> {
  return control(baseUrl, "GET", `/__fake/calls?key=${encodeURIComponent(key)}`);
}

/** Forgets a key's queued steps and recorded calls (every key when none is given). */
export function resetFake(baseUrl: string, key?: string): Promise<{ ok: true }> {
  return control(baseUrl, "POST", "/__fake/reset", key ? { key } : {});
}

/** Reads a stream to its end: the events it yielded, and the error it threw (if it threw). */
export async function drain<T>(stream: AsyncIterable<T>): Promise<{ events: T[]; error?: unknown }> {
  const events: T[] = [];
  try {
    for await (const e of stream) events.push(e);
    return { events };
  } catch (error) {
    return { events, error };
  }
}

/** The error a promise rejects with; fails the test when it resolves. */
export async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error("expected the call to fail, but it succeeded");
}

/** The ProviderError a promise rejects with; fails the test when it resolves or throws anything else. */
export async function providerError(p: Promise<unknown>): Promise<ProviderError> {
  const err = await rejection(p);
  expect(err).toBeInstanceOf(ProviderError);
  return err as ProviderError;
}
