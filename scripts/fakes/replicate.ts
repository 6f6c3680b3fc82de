// A fake of Replicate's predictions API (https://replicate.com/docs/reference/http), under
// /replicate/v1, for the real `replicate` SDK. Predictions live in memory and go starting →
// processing (tqdm progress lines in `logs`) → succeeded | failed | canceled; output files are
// tiny PNG/MP4 files served by the fake at /replicate/files/…. When a prediction has a webhook
// the fake POSTs the prediction to it, signed the Standard Webhooks way with the account secret
// (GET /v1/webhooks/default/secret): `start` on creation, `logs` per processing step, `output`
// and `completed` at the end, filtered by webhook_events_filter (default output + completed). A
// delivery answered non-2xx is sent again with the same webhook-id.
//
// Script keys: creates take a step from "replicate:<model ref>" — the ref as the adapter was given
// it ("owner/name" from POST /v1/models/{owner}/{name}/predictions, "owner/name:version" or a bare
// version id from POST /v1/predictions). Reads and cancels of a prediction take from
// "replicate:<model ref>:task", lists from "replicate:list". Modes:
//   ok (default)          options: pollsUntilDone|steps (3), progress [..], clock "poll"|"time",
//                         stepMs (100), output (any JSON), outputType "png"|"mp4", outputCount (1),
//                         predictTime (seconds, 1.5), webhookDelayMs
//   fail                  ends failed; option error
//   refuse                ends failed with an NSFW error (what Replicate's safety checkers report)
//   webhook_twice         the completed webhook is delivered twice with the same webhook-id
//   webhook_late          the completed webhook goes out webhookDelayMs (1000) after a poll can see the end
//   succeed_after_timeout creates the prediction, then never answers the create
//   rate_limit (retryAfter s) | server_error | overloaded | timeout | auth | not_found | bad_request
// A list step may carry `pageSize` (default 100, as the API).
import { webhookHeaders } from "../../functions/_shared/webhooks/signature.ts";
import { type FakeRequest, type FakeRoute, type FakeServerState, hang, sendJson, serverData, type Step } from "./lib/fake-server.ts";
import { answerHttpFailure, credential, DeliveryQueue, deliver, deliverFinal, fileStore, later, type Lifecycle, lifecycle, mediaFor, randomId, runningProgress, scriptedTask, serveFile } from "./lib/tasks.ts";

const P = "/replicate/v1";
const PROBLEM = "application/problem+json";

type Status = "starting" | "processing" | "succeeded" | "failed" | "canceled";
type Stage = { status: "processing"; progress: number } | { status: "succeeded" } | { status: "failed"; error: string };

interface Prediction extends Lifecycle<Stage> {
  id: string;
  key: string;
  model: string;
  version: string;
  input: Record<string, unknown>;
  webhook?: string;
  filter?: string[];
  createdAt: string;
  startedAt: string | null;
  completedAt: string | null;
  status: Status;
  output: unknown;
  error: string | null;
  logs: string;
  predictTime: number;
  step: Step;
  deliveries: DeliveryQueue;
}

interface ReplicateState {
  predictions: Map<string, Prediction>;
  order: string[];
  secret: string;
}

function state(server: FakeServerState): ReplicateState {
  return serverData(server, "replicate", (): ReplicateState => {
    const raw = crypto.getRandomValues(new Uint8Array(24));
    return { predictions: new Map(), order: [], secret: `whsec_${Buffer.from(raw).toString("base64")}` };
  });
}

function problem(status: number, detail: string, title = detail) {
  return { title, detail, status };
}

const errorBody = (status: number, message: string) => problem(status, message, status === 429 ? "Request was throttled" : message);

function view(p: Prediction, server: FakeServerState) {
  const get = `${server.url}${P}/predictions/${p.id}`;
  const out: Record<string, unknown> = {
    id: p.id,
    model: p.model,
    version: p.version,
    input: p.input,
    logs: p.logs,
    output: p.output,
    data_removed: false,
    error: p.error,
    status: p.status,
    created_at: p.createdAt,
    started_at: p.startedAt,
    completed_at: p.completedAt,
    source: "api",
    metrics: p.status === "succeeded" || p.status === "failed" || p.status === "canceled" ? { predict_time: p.predictTime, total_time: p.predictTime + 0.2 } : {},
    urls: { get, cancel: `${get}/cancel`, web: `https://replicate.com/p/${p.id}` },
  };
  if (p.webhook) {
    out.webhook = p.webhook;
    if (p.filter) out.webhook_events_filter = p.filter;
  }
  return out;
}

const terminal = (s: Status) => s === "succeeded" || s === "failed" || s === "canceled";

function tqdmLine(progress: number): string {
  const pct = Math.round(progress * 100);
  const bar = "█".repeat(Math.round(pct / 10)).padEnd(10, " ");
  return `${String(pct).padStart(3, " ")}%|${bar}| ${pct}/100 [00:0${Math.min(9, Math.round(pct / 12))}<00:01, 9.80it/s]`;
}

// ---------------------------------------------------------------------------- webhooks

function wants(p: Prediction, event: string): boolean {
  if (!p.webhook) return false;
  return (p.filter ?? ["output", "completed"]).includes(event);
}

function sendEvent(p: Prediction, server: FakeServerState, event: "start" | "logs" | "output" | "completed"): void {
  if (!wants(p, event)) return;
  const s = state(server);
  const url = p.webhook!;
  const body = JSON.stringify(view(p, server));
  const webhookId = `msg_${randomId(27, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")}`;
  const delivery = {
    url,
    body,
    // Signed the Standard Webhooks way, as Plinth's own deliveries, each attempt at its own time.
    headers: async () => ({ ...(await webhookHeaders([s.secret], webhookId, new Date(), body)), "user-agent": "Replicate-Webhooks/1.0" }),
  };
  if (event !== "completed") return p.deliveries.push(() => deliver(delivery));
  deliverFinal(p.deliveries, p.step, delivery);
}

// ---------------------------------------------------------------------------- lifecycle

function plan(step: Step): Stage[] {
  const running: Stage[] = runningProgress(step).map((progress) => ({ status: "processing", progress }));
  if (step.mode === "fail") return [...running, { status: "failed", error: String(step.error ?? "Prediction interrupted; please retry (code: PA)") }];
  if (step.mode === "refuse") {
    return [...running, { status: "failed", error: String(step.error ?? "NSFW content detected. Try running it again, or try a different prompt.") }];
  }
  return [...running, { status: "succeeded" }];
}

function outputFor(p: Prediction, server: FakeServerState): unknown {
  if (p.step.output !== undefined) return p.step.output;
  const files = fileStore(server, "replicate");
  const mp4 = p.step.outputType === "mp4";
  const count = mp4 ? 1 : Math.max(1, Number(p.step.outputCount ?? 1));
  const urls = Array.from({ length: count }, (_, i) => {
    const name = `${p.id}/out-${i}.${mp4 ? "mp4" : "png"}`;
    files.set(name, mediaFor(name, i + p.id.charCodeAt(0)));
    return `${server.url}/replicate/files/${name}`;
  });
  // Video models answer one URL; image models a list of them.
  return mp4 ? urls[0] : urls;
}

function advance(p: Prediction, server: FakeServerState): void {
  if (terminal(p.status) || p.next >= p.stages.length) return;
  const stage = p.stages[p.next++];
  const now = new Date().toISOString();
  if (stage.status === "processing") {
    p.status = "processing";
    p.startedAt ??= now;
    p.logs += `${tqdmLine(stage.progress)}\n`;
    sendEvent(p, server, "logs");
  } else if (stage.status === "succeeded") {
    p.startedAt ??= now;
    p.status = "succeeded";
    p.output = outputFor(p, server);
    p.logs += `${tqdmLine(1)}\n`;
    p.completedAt = now;
    sendEvent(p, server, "output");
    sendEvent(p, server, "completed");
  } else {
    p.startedAt ??= now;
    p.status = "failed";
    p.error = stage.error;
    p.completedAt = now;
    sendEvent(p, server, "completed");
  }
  if (p.clock === "time") tick(p, server);
}

function tick(p: Prediction, server: FakeServerState): void {
  if (!terminal(p.status)) later(p.stepMs, () => advance(p, server));
}

// ---------------------------------------------------------------------------- routes

function authorized(r: FakeRequest): boolean {
  if (credential(r.req, "Bearer")) return true;
  sendJson(r.res, 401, problem(401, "You did not pass a valid authentication token", "Unauthenticated"), { "content-type": PROBLEM });
  return false;
}

function create(r: FakeRequest, key: string, model: string, version: string): void {
  const step = r.take(key);
  if (answerHttpFailure(r, step, errorBody, PROBLEM)) return;
  const body = r.json as { input?: unknown; webhook?: unknown; webhook_events_filter?: unknown } | undefined;
  if (!body || typeof body.input !== "object" || body.input === null || Array.isArray(body.input)) {
    return sendJson(r.res, 422, problem(422, "- input: Input is required", "Input validation failed"), { "content-type": PROBLEM });
  }
  if (body.webhook !== undefined) {
    let ok = typeof body.webhook === "string";
    try {
      ok = ok && /^https?:$/.test(new URL(body.webhook as string).protocol);
    } catch {
      ok = false;
    }
    if (!ok) return sendJson(r.res, 422, problem(422, "- webhook: Enter a valid URL.", "Invalid webhook"), { "content-type": PROBLEM });
  }
  const s = state(r.server);
  const webhook = typeof body.webhook === "string" ? body.webhook : undefined;
  const p: Prediction = {
    id: randomId(26, "abcdefghijklmnopqrstuvwxyz234567"),
    key,
    model,
    version,
    input: body.input as Record<string, unknown>,
    webhook,
    filter: Array.isArray(body.webhook_events_filter) ? (body.webhook_events_filter as string[]) : undefined,
    createdAt: new Date().toISOString(),
    startedAt: null,
    completedAt: null,
    status: "starting",
    output: null,
    error: null,
    logs: "",
    predictTime: Number(step.predictTime ?? 1.5),
    ...lifecycle(step, plan(step), Boolean(webhook)),
    step,
    deliveries: new DeliveryQueue(),
  };
  s.predictions.set(p.id, p);
  s.order.push(p.id);
  sendEvent(p, r.server, "start");
  if (p.clock === "time") tick(p, r.server);
  // The prediction exists; the caller just never hears about it.
  if (step.mode === "succeed_after_timeout") return hang(r.res);
  sendJson(r.res, 201, view(p, r.server));
}

function findPrediction(r: FakeRequest): Prediction | null {
  const p = state(r.server).predictions.get(r.params[0]);
  if (!p) {
    r.record("replicate:unknown:task");
    sendJson(r.res, 404, problem(404, "Not found."), { "content-type": PROBLEM });
    return null;
  }
  return p;
}

const predictionOf = (r: FakeRequest) => scriptedTask(r, authorized, findPrediction, errorBody, PROBLEM);

function encodeCursor(offset: number, size: number): string {
  return Buffer.from(JSON.stringify({ o: offset, n: size })).toString("base64url");
}

function decodeCursor(cursor: string | null): { o: number; n: number } | null {
  if (!cursor) return null;
  try {
    const c = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8"));
    return Number.isInteger(c.o) && Number.isInteger(c.n) ? c : null;
  } catch {
    return null;
  }
}

export const replicateRoutes: FakeRoute[] = [
  {
    method: "POST",
    path: /^\/replicate\/v1\/models\/([^/]+)\/([^/]+)\/predictions$/,
    handle(r) {
      if (!authorized(r)) return;
      const model = `${decodeURIComponent(r.params[0])}/${decodeURIComponent(r.params[1])}`;
      create(r, `replicate:${model}`, model, "hidden");
    },
  },
  {
    method: "POST",
    path: /^\/replicate\/v1\/predictions$/,
    handle(r) {
      if (!authorized(r)) return;
      const version = typeof r.json?.version === "string" ? (r.json.version as string) : "";
      if (!version) return sendJson(r.res, 422, problem(422, "- version: This field is required.", "Invalid version"), { "content-type": PROBLEM });
      const m = /^([^/:]+\/[^/:]+):(.+)$/.exec(version);
      create(r, `replicate:${version}`, m ? m[1] : `fake/model-${version.slice(0, 8)}`, m ? m[2] : version);
    },
  },
  {
    method: "GET",
    path: /^\/replicate\/v1\/predictions$/,
    handle(r) {
      if (!authorized(r)) return;
      const step = r.take("replicate:list");
      if (answerHttpFailure(r, step, errorBody, PROBLEM)) return;
      const s = state(r.server);
      const cursor = decodeCursor(r.url.searchParams.get("cursor"));
      const size = cursor?.n ?? Math.max(1, Number(step.pageSize ?? 100));
      const offset = cursor?.o ?? 0;
      const newestFirst = [...s.order].reverse();
      const results = newestFirst.slice(offset, offset + size).map((id) => view(s.predictions.get(id)!, r.server));
      const base = `${r.server.url}${P}/predictions`;
      sendJson(r.res, 200, {
        next: offset + size < newestFirst.length ? `${base}?cursor=${encodeCursor(offset + size, size)}` : null,
        previous: offset > 0 ? `${base}?cursor=${encodeCursor(Math.max(0, offset - size), size)}` : null,
        results,
      });
    },
  },
  {
    method: "GET",
    path: /^\/replicate\/v1\/predictions\/([^/]+)$/,
    handle(r) {
      const p = predictionOf(r);
      if (!p) return;
      if (p.clock === "poll") advance(p, r.server);
      sendJson(r.res, 200, view(p, r.server));
    },
  },
  {
    method: "POST",
    path: /^\/replicate\/v1\/predictions\/([^/]+)\/cancel$/,
    handle(r) {
      const p = predictionOf(r);
      if (!p) return;
      if (!terminal(p.status)) {
        p.status = "canceled";
        p.completedAt = new Date().toISOString();
        sendEvent(p, r.server, "completed");
      }
      sendJson(r.res, 200, view(p, r.server));
    },
  },
  {
    method: "GET",
    path: /^\/replicate\/v1\/webhooks\/default\/secret$/,
    handle(r) {
      if (!authorized(r)) return;
      r.record("replicate:secret");
      sendJson(r.res, 200, { key: state(r.server).secret });
    },
  },
  {
    method: "GET",
    path: /^\/replicate\/files\/(.+)$/,
    handle(r) {
      serveFile(r, "replicate", r.params[0]);
    },
  },
];
