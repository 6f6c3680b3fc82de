// Replicate predictions through the official `replicate` SDK (1.4.0).
//
// No retries inside an attempt. The SDK has no maxRetries option: Replicate#request wraps every
// call in withAutomaticRetries (lib/util.js), which repeats a request up to 5 more times on a 429
// (any method), on a 5xx (GET), and on ANY thrown fetch error (it swallows everything that is not
// its own ApiError, timeouts and connection failures included) — so a POST whose connection broke
// after the provider got it would be sent again. We cannot switch that loop off, so each adapter
// call builds a client around a one-shot fetch: the first failed answer or thrown error of the
// call is recorded, and every later fetch of the same call replays it without touching the
// network. The SDK's retries become no-ops (in 1.4.0 its back-off between them is at most a
// millisecond: with maxRetries unset the sleep it computes is NaN), it throws, and we map the
// recorded failure to a ProviderError. Any failure ends an adapter call, so a replay can never
// hide a real request. tests/ai/providers-replicate.test.ts counts the requests that reach the fake.
//
// Idempotency. Replicate has no idempotency key. The only thing we set on a prediction that the
// prediction object gives back is its webhook URL (Prediction.webhook in the SDK's types), so the
// attempt's key travels there as `?attempt=<key>`: webhook deliveries carry it back to us, and
// findByIdempotencyKey pages through GET /v1/predictions (newest first) matching it. That is why
// submit needs a webhookUrl. Putting the key into `input` was rejected: a model's input schema is
// its own, and an unknown key may be refused, ignored or even used by the model.
//
// Statuses: starting → queued, processing → running (progress parsed from tqdm lines in the logs),
// succeeded (outputs are the URL/data-URI leaves of `output`; computeSeconds = metrics.predict_time),
// failed → refused with content_policy when the error says the input or output was flagged
// (NSFW/sensitive/safety), else failed; canceled and aborted (deadline hit before it started) → canceled.
// Replicate has no API to delete a prediction: API predictions' inputs, outputs and files are
// removed automatically after an hour, so this adapter has no `delete`.
import Replicate, { parseProgressFromLogs } from "replicate";
import {
  type AsyncSubmitRequest,
  type AsyncTask,
  type GeneratedFile,
  type ProviderAdapter,
  type ProviderConnection,
  ProviderError,
} from "../types.ts";
import { deadline } from "./common.ts";
import { errorFromResponse, errorFromThrown, type HttpFailure, mimeFromUrl, seconds } from "./task-http.ts";

/** The webhook URL query parameter that carries our idempotency key. */
export const REPLICATE_ATTEMPT_PARAM = "attempt";
/** Events we ask for: start, every new output, and the terminal state. */
export const REPLICATE_WEBHOOK_EVENTS = ["start", "output", "completed"] as const;
/** Pages of GET /v1/predictions (100 each, newest first) a lookup reads before giving up. */
export const REPLICATE_LOOKUP_MAX_PAGES = 10;

const PROVIDER = "replicate";
const USER_AGENT = "plinth-ai-gateway";

/** The webhook URL with our key added, so deliveries and the prediction object carry it. */
export function replicateWebhookUrl(webhookUrl: string, idempotencyKey: string): string {
  const url = new URL(webhookUrl);
  url.searchParams.set(REPLICATE_ATTEMPT_PARAM, idempotencyKey);
  return url.toString();
}

/** The idempotency key in a webhook URL we built (a prediction's `webhook`, or the URL a delivery arrived on). */
export function attemptKeyFromWebhookUrl(webhookUrl: unknown): string | null {
  if (typeof webhookUrl !== "string" || webhookUrl === "") return null;
  try {
    return new URL(webhookUrl).searchParams.get(REPLICATE_ATTEMPT_PARAM);
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------- status mapping

const POLICY_PATTERN = /nsfw|sensitive|safety|content polic|flagged|moderat|\(E005\)/i;

/** Whether a Replicate error text reports a content-policy refusal rather than a failure. */
export function isReplicatePolicyError(text: string): boolean {
  return POLICY_PATTERN.test(text);
}

function errorText(error: unknown): string {
  if (error === null || error === undefined) return "";
  if (typeof error === "string") return error;
  try {
    return JSON.stringify(error);
  } catch {
    return String(error);
  }
}

/** Replicate error codes are E#### (plus the older E00# of some partner models). */
function errorCode(text: string): string | undefined {
  return /\b(E\d{3,4})\b/.exec(text)?.[1];
}

function dataUriFile(uri: string): GeneratedFile | null {
  const m = /^data:([^;,]*)(;base64)?,(.*)$/s.exec(uri);
  if (!m) return null;
  const mimeType = m[1] || "application/octet-stream";
  if (m[2]) {
    const bin = atob(m[3]);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    return { bytes, mimeType };
  }
  return { bytes: new TextEncoder().encode(decodeURIComponent(m[3])), mimeType };
}

/** The files in a prediction's output: every http(s) URL or data URI among its leaves, in order. */
export function replicateOutputFiles(output: unknown): GeneratedFile[] {
  const files: GeneratedFile[] = [];
  const walk = (v: unknown) => {
    if (typeof v === "string") {
      if (/^https?:\/\//i.test(v)) files.push({ url: v, mimeType: mimeFromUrl(v) });
      else if (v.startsWith("data:")) {
        const f = dataUriFile(v);
        if (f) files.push(f);
      }
    } else if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === "object") Object.values(v).forEach(walk);
  };
  walk(output);
  return files;
}

/** The fields of a prediction (from the API, or a verified webhook body) that the mapping reads. */
export interface ReplicatePredictionLike {
  id: string;
  status: string;
  input?: object;
  output?: unknown;
  error?: unknown;
  logs?: string | null;
  metrics?: { predict_time?: number } | null;
  webhook?: string;
}

/** A Replicate prediction (from the API or a webhook body) as an AsyncTask. */
export function replicatePredictionToTask(p: ReplicatePredictionLike): AsyncTask {
  const task: AsyncTask = { providerTaskId: p.id, status: "queued" };
  const computeSeconds = seconds(p.metrics?.predict_time);
  switch (p.status) {
    case "starting":
      return task;
    case "processing": {
      task.status = "running";
      const progress = parseProgressFromLogs(p.logs ?? "");
      if (progress) task.progress = Math.min(1, Math.max(0, progress.percentage));
      return task;
    }
    case "succeeded": {
      task.status = "succeeded";
      task.progress = 1;
      task.outputs = replicateOutputFiles(p.output);
      if (computeSeconds !== undefined) task.computeSeconds = computeSeconds;
      // Replicate does not report an output's length; per-second video models produce what was asked.
      const asked = seconds((p.input as Record<string, unknown> | undefined)?.duration);
      if (asked !== undefined) task.durationSeconds = asked;
      return task;
    }
    case "failed": {
      const message = errorText(p.error) || "prediction failed";
      const code = errorCode(message);
      if (isReplicatePolicyError(message)) {
        task.status = "refused";
        task.error = { code: code ?? "content_policy", message, errorClass: "content_policy" };
      } else {
        task.status = "failed";
        // E6716: the prediction never got a worker in time.
        task.error = { code: code ?? "prediction_failed", message, errorClass: code === "E6716" ? "timeout" : "server" };
      }
      if (computeSeconds !== undefined) task.computeSeconds = computeSeconds;
      return task;
    }
    case "canceled":
    case "aborted":
      task.status = "canceled";
      if (computeSeconds !== undefined) task.computeSeconds = computeSeconds;
      return task;
    default:
      throw new ProviderError("server", `replicate: unknown prediction status ${JSON.stringify(p.status)}`, { code: "unknown_status" });
  }
}

// ---------------------------------------------------------------------------- input

/**
 * The normalized input in the names most Replicate models use (prompt, image, audio, duration,
 * aspect_ratio, resolution); keys we do not normalize pass through unchanged, so a deployment can
 * send a model's own parameters. An explicit model-specific key wins over the mapped one.
 */
export function replicateInput(input: Record<string, unknown>): Record<string, unknown> {
  const mapped: Record<string, unknown> = {};
  const rename: Record<string, string> = {
    image_url: "image",
    audio_url: "audio",
    duration_seconds: "duration",
    ratio: "aspect_ratio",
  };
  for (const [k, v] of Object.entries(input)) {
    if (v === undefined || k === "script") continue;
    const target = rename[k];
    if (target) {
      if (!(target in input)) mapped[target] = v;
    } else mapped[k] = v;
  }
  const script = input.script as { text?: unknown } | undefined;
  if (script && typeof script.text === "string" && !("text" in input)) mapped.text = script.text;
  return mapped;
}

function parseModelRef(ref: string): { model: string; version?: string } {
  const m = /^([^/\s]+)\/([^/:\s]+)(?::(\S+))?$/.exec(ref);
  if (!m) throw new ProviderError("bad_request", `replicate: model must be "owner/name" or "owner/name:version", got ${JSON.stringify(ref)}`, { code: "bad_model" });
  return { model: `${m[1]}/${m[2]}`, version: m[3] };
}

// ---------------------------------------------------------------------------- transport

function describeReplicateError(body: unknown, text: string): { code?: string; message?: string } {
  const b = body as { title?: unknown; detail?: unknown; error?: unknown } | undefined;
  const detail = typeof b?.detail === "string" ? b.detail : undefined;
  const title = typeof b?.title === "string" ? b.title : undefined;
  const message = detail ?? title ?? (typeof b?.error === "string" ? b.error : undefined) ?? text.slice(0, 300);
  return { code: errorCode(message), message };
}

const REPLICATE_ERRORS = {
  describe: describeReplicateError,
  policy: (code: string | undefined, message: string) => isReplicatePolicyError(`${code ?? ""} ${message}`),
};

/**
 * A fetch for one adapter call: every request gets its own deadline joined with the caller's
 * signal; after the first failure (non-2xx answer or thrown error) every further request of this
 * call replays it instead of going out (see the file comment).
 */
function oneShotFetch(conn: ProviderConnection, signal: AbortSignal | undefined) {
  const realFetch = conn.fetch ?? globalThis.fetch;
  let failure: { kind: "response"; http: HttpFailure; bytes: Uint8Array<ArrayBuffer> } | { kind: "thrown"; error: unknown } | null = null;
  const replay = (): Response => {
    if (failure?.kind !== "response") throw (failure as { error: unknown }).error;
    const { status, headers } = failure.http;
    // 304 and friends may not carry a body.
    return new Response([101, 103, 204, 205, 304].includes(status) ? null : failure.bytes.slice(), { status, headers });
  };
  const guarded = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    if (failure) return replay();
    let res: Response;
    try {
      res = await realFetch(input, { ...init, signal: deadline(conn.timeoutMs, signal) });
    } catch (error) {
      failure = { kind: "thrown", error };
      throw error;
    }
    if (res.ok) return res;
    let bytes: Uint8Array<ArrayBuffer>;
    try {
      bytes = new Uint8Array(await res.arrayBuffer());
    } catch (error) {
      failure = { kind: "thrown", error };
      throw error;
    }
    failure = { kind: "response", http: { status: res.status, headers: res.headers, text: new TextDecoder().decode(bytes) }, bytes };
    return replay();
  };
  return {
    fetch: guarded as typeof fetch,
    /** The ProviderError for whatever ended the call. */
    toProviderError(err: unknown): ProviderError {
      if (err instanceof ProviderError) return err;
      if (failure?.kind === "response") return errorFromResponse(PROVIDER, failure.http, REPLICATE_ERRORS);
      if (failure?.kind === "thrown") return errorFromThrown(PROVIDER, failure.error, conn.timeoutMs);
      // Thrown after a 2xx answer: reading the body timed out, or the SDK could not parse it.
      if ((err as { name?: string })?.name === "SyntaxError") {
        return new ProviderError("server", `replicate: answer is not JSON (${(err as Error).message})`, { code: "malformed_response" });
      }
      return errorFromThrown(PROVIDER, err, conn.timeoutMs);
    },
  };
}

// ---------------------------------------------------------------------------- the adapter

export function createReplicateAdapter(conn: ProviderConnection): ProviderAdapter {
  async function call<T>(signal: AbortSignal | undefined, fn: (client: Replicate) => Promise<T>): Promise<T> {
    if (signal?.aborted) throw errorFromThrown(PROVIDER, signal.reason ?? new DOMException("aborted", "AbortError"), conn.timeoutMs);
    const guard = oneShotFetch(conn, signal);
    const client = new Replicate({
      auth: conn.apiKey,
      baseUrl: conn.baseUrl ?? undefined,
      fetch: guard.fetch,
      userAgent: USER_AGENT,
      useFileOutput: false,
    });
    try {
      return await fn(client);
    } catch (err) {
      throw guard.toProviderError(err);
    }
  }

  return {
    kind: "replicate",

    async submit(req: AsyncSubmitRequest, signal?: AbortSignal): Promise<AsyncTask> {
      if (!req.webhookUrl) {
        throw new ProviderError("bad_request", "replicate: submit needs a webhookUrl; it carries the idempotency key that lets a lost answer be found again", {
          code: "webhook_required",
        });
      }
      const { model, version } = parseModelRef(req.model);
      const options = {
        input: replicateInput(req.input),
        webhook: replicateWebhookUrl(req.webhookUrl, req.idempotencyKey),
        webhook_events_filter: [...REPLICATE_WEBHOOK_EVENTS],
      };
      const prediction = await call(signal, (client) =>
        // With a version the body's `version` is "owner/name:version" (the API accepts both forms).
        version ? client.predictions.create({ ...options, version: `${model}:${version}` }) : client.predictions.create({ ...options, model }),
      );
      return replicatePredictionToTask(prediction);
    },

    async get(providerTaskId: string, signal?: AbortSignal): Promise<AsyncTask> {
      return replicatePredictionToTask(await call(signal, (client) => client.predictions.get(providerTaskId)));
    },

    async findByIdempotencyKey(key: string, signal?: AbortSignal): Promise<AsyncTask | null> {
      return await call(signal, async (client) => {
        let page = await client.predictions.list();
        for (let n = 1; ; n++) {
          const hit = page.results.find((p) => attemptKeyFromWebhookUrl(p.webhook) === key);
          if (hit) return replicatePredictionToTask(hit);
          if (!page.next) return null;
          if (n >= REPLICATE_LOOKUP_MAX_PAGES) {
            throw new ProviderError("server", `replicate: no prediction with attempt ${key} in the newest ${n} pages; cannot confirm there is none`, {
              code: "lookup_incomplete",
            });
          }
          page = await (await client.request(page.next, { method: "GET" })).json();
        }
      });
    },

    async cancel(providerTaskId: string, signal?: AbortSignal): Promise<void> {
      await call(signal, (client) => client.predictions.cancel(providerTaskId));
    },
  };
}
