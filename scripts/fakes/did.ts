// A fake of D-ID's talks API (https://docs.d-id.com/reference/talks-overview), under /did:
// POST /did/talks (Authorization: Basic) → 201 {id: "tlk_…", status: "created"}; GET
// /did/talks/{id} → created → started → done (result_url: an MP4 served at /did/files/<id>.mp4,
// duration) | error (error {kind, description}) | rejected; GET /did/talks?limit=&token= lists
// newest first ({talks, token} while more remain); DELETE /did/talks/{id}. A talk keeps the
// `user_data` it was created with. With a `webhook`, the finished talk is POSTed to it (D-ID's
// webhook signing is not documented, so these deliveries are unsigned); a non-2xx answer is
// retried.
//
// Script keys: creates take from "did:<name>" — the talk's `name` field, "did:talks" when it has
// none (so tests that want their own script give each talk a unique name) — reads and deletes of
// a talk from "<that key>:task", lists from "did:list". Modes:
//   ok (default)          options: pollsUntilDone|steps (3), durationSeconds (3.5), clock "poll"|"time", stepMs (100),
//                         output (a result_url instead of the fake's MP4)
//   fail                  ends "error"; options kind (InternalServerError), description
//   refuse                ends "rejected"
//   webhook_twice         the finished talk is delivered twice
//   webhook_late          the delivery goes out webhookDelayMs (1000) after a poll can see the end
//   succeed_after_timeout creates the talk, then never answers
//   rate_limit (retryAfter s) | server_error | overloaded | timeout | auth | not_found | bad_request
// A list step may carry `limit` to override the request's page size.
import { type FakeRequest, type FakeRoute, type FakeServerState, hang, sendJson, serverData, type Step } from "./lib/fake-server.ts";
import { answerHttpFailure, credential, DeliveryQueue, deliverFinal, fileStore, later, type Lifecycle, lifecycle, mediaFor, randomId, runningProgress, scriptedTask, serveFile } from "./lib/tasks.ts";

type Status = "created" | "started" | "done" | "error" | "rejected";
type Stage = { status: "started" } | { status: "done" } | { status: "error"; kind: string; description: string } | { status: "rejected"; error?: { kind: string; description: string } };

interface Talk extends Lifecycle<Stage> {
  id: string;
  key: string;
  sourceUrl: string;
  audioUrl?: string;
  script: Record<string, unknown>;
  userData?: string;
  name?: string;
  webhook?: string;
  createdAt: string;
  startedAt?: string;
  modifiedAt: string;
  status: Status;
  resultUrl?: string;
  duration?: number;
  error?: { kind: string; description: string };
  step: Step;
  deliveries: DeliveryQueue;
}

interface DidState {
  talks: Map<string, Talk>;
  order: string[];
}

function state(server: FakeServerState): DidState {
  return serverData(server, "did", (): DidState => ({ talks: new Map(), order: [] }));
}

const KINDS: Record<number, string> = {
  400: "ValidationError",
  401: "AuthorizationError",
  402: "InsufficientCreditsError",
  404: "NotFoundError",
  422: "ValidationError",
  429: "TooManyRequestsError",
  500: "InternalServerError",
  503: "ServiceUnavailableError",
};
const errorBody = (status: number, message: string) => ({ kind: KINDS[status] ?? "UnknownError", description: message });
const terminal = (s: Status) => s === "done" || s === "error" || s === "rejected";
const USER = "google-oauth2|100000000000000000001";

function view(t: Talk) {
  const out: Record<string, unknown> = {
    id: t.id,
    object: "talk",
    user_id: USER,
    created_by: USER,
    source_url: t.sourceUrl,
    created_at: t.createdAt,
    modified_at: t.modifiedAt,
    status: t.status,
    config: { stitch: false, fluent: false, pad_audio: 0, result_format: ".mp4" },
  };
  if (t.audioUrl) out.audio_url = t.audioUrl;
  if (t.startedAt) out.started_at = t.startedAt;
  if (t.userData !== undefined) out.user_data = t.userData;
  if (t.name !== undefined) out.name = t.name;
  if (t.webhook) out.webhook = t.webhook;
  if (t.status === "done") {
    out.result_url = t.resultUrl;
    out.duration = t.duration;
  }
  if (t.error) out.error = t.error;
  return out;
}

function plan(step: Step): Stage[] {
  const started: Stage[] = runningProgress(step).map(() => ({ status: "started" }));
  if (step.mode === "refuse") {
    return [...started, { status: "rejected", error: typeof step.kind === "string" ? { kind: step.kind, description: String(step.description ?? "rejected") } : undefined }];
  }
  if (step.mode === "fail") {
    return [...started, { status: "error", kind: String(step.kind ?? "InternalServerError"), description: String(step.description ?? "Internal error while producing the video") }];
  }
  return [...started, { status: "done" }];
}

function notify(t: Talk): void {
  if (!t.webhook) return;
  deliverFinal(t.deliveries, t.step, { url: t.webhook, body: JSON.stringify(view(t)), headers: async () => ({ "content-type": "application/json", "user-agent": "D-ID-Webhooks" }) });
}

function advance(t: Talk, server: FakeServerState): void {
  if (terminal(t.status) || t.next >= t.stages.length) return;
  const stage = t.stages[t.next++];
  const now = new Date().toISOString();
  t.status = stage.status;
  t.modifiedAt = now;
  if (stage.status !== "rejected") t.startedAt ??= now;
  if (stage.status === "done") {
    const name = `${t.id}.mp4`;
    fileStore(server, "did").set(name, mediaFor(name, 0));
    t.resultUrl = typeof t.step.output === "string" ? t.step.output : `${server.url}/did/files/${name}`;
    t.duration = Number(t.step.durationSeconds ?? 3.5);
  } else if (stage.status === "error") {
    t.error = { kind: stage.kind, description: stage.description };
  } else if (stage.status === "rejected" && stage.error) {
    t.error = stage.error;
  }
  if (terminal(t.status)) notify(t);
  else if (t.clock === "time") later(t.stepMs, () => advance(t, server));
}

function authorized(r: FakeRequest): boolean {
  if (credential(r.req, "Basic")) return true;
  sendJson(r.res, 401, { kind: "AuthorizationError", description: "Unauthorized" });
  return false;
}

function findTalk(r: FakeRequest): Talk | null {
  const t = state(r.server).talks.get(decodeURIComponent(r.params[0]));
  if (!t) {
    r.record("did:unknown:task");
    sendJson(r.res, 404, { kind: "NotFoundError", description: "talk not found" });
    return null;
  }
  return t;
}

const talkOf = (r: FakeRequest) => scriptedTask(r, authorized, findTalk, errorBody);

export const didRoutes: FakeRoute[] = [
  {
    method: "POST",
    path: /^\/did\/talks$/,
    handle(r) {
      if (!authorized(r)) return;
      const body = r.json as Record<string, any> | undefined;
      const name = typeof body?.name === "string" && body.name !== "" ? body.name : undefined;
      const key = `did:${name ?? "talks"}`;
      const step = r.take(key);
      if (answerHttpFailure(r, step, errorBody)) return;
      const invalid = (description: string) => sendJson(r.res, 400, { kind: "ValidationError", description });
      if (typeof body?.source_url !== "string" || body.source_url === "") return invalid("source_url is required");
      const script = body.script as Record<string, unknown> | undefined;
      if (script?.type === "text") {
        if (typeof script.input !== "string" || script.input === "") return invalid("script.input is required");
      } else if (script?.type === "audio") {
        if (typeof script.audio_url !== "string" || script.audio_url === "") return invalid("script.audio_url is required");
      } else return invalid("script.type must be text or audio");
      if (body.user_data !== undefined && (typeof body.user_data !== "string" || body.user_data.length < 1 || body.user_data.length > 1000)) {
        return invalid("user_data must be a string of 1 to 1000 characters");
      }
      const now = new Date().toISOString();
      const webhook = typeof body.webhook === "string" ? body.webhook : undefined;
      const t: Talk = {
        id: `tlk_${randomId(21, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")}`,
        key,
        sourceUrl: body.source_url,
        audioUrl: script.type === "audio" ? (script.audio_url as string) : undefined,
        script,
        userData: body.user_data,
        name,
        webhook,
        createdAt: now,
        modifiedAt: now,
        status: "created",
        ...lifecycle(step, plan(step), Boolean(webhook)),
        step,
        deliveries: new DeliveryQueue(),
      };
      const s = state(r.server);
      s.talks.set(t.id, t);
      s.order.push(t.id);
      if (t.clock === "time") later(t.stepMs, () => advance(t, r.server));
      if (step.mode === "succeed_after_timeout") return hang(r.res);
      sendJson(r.res, 201, { id: t.id, object: "talk", created_by: USER, created_at: t.createdAt, status: t.status });
    },
  },
  {
    method: "GET",
    path: /^\/did\/talks$/,
    handle(r) {
      if (!authorized(r)) return;
      const step = r.take("did:list");
      if (answerHttpFailure(r, step, errorBody)) return;
      const s = state(r.server);
      const limit = Math.max(1, Math.min(100, Number(step.limit ?? r.url.searchParams.get("limit") ?? 100) || 100));
      const token = r.url.searchParams.get("token");
      const offset = token ? Number(Buffer.from(token, "base64url").toString("utf8")) || 0 : 0;
      const newestFirst = [...s.order].reverse().filter((id) => s.talks.has(id));
      const talks = newestFirst.slice(offset, offset + limit).map((id) => view(s.talks.get(id)!));
      const out: Record<string, unknown> = { talks };
      if (offset + limit < newestFirst.length) out.token = Buffer.from(String(offset + limit)).toString("base64url");
      sendJson(r.res, 200, out);
    },
  },
  {
    method: "GET",
    path: /^\/did\/talks\/([^/]+)$/,
    handle(r) {
      const t = talkOf(r);
      if (!t) return;
      if (t.clock === "poll") advance(t, r.server);
      sendJson(r.res, 200, view(t));
    },
  },
  {
    method: "DELETE",
    path: /^\/did\/talks\/([^/]+)$/,
    handle(r) {
      const t = talkOf(r);
      if (!t) return;
      const s = state(r.server);
      s.talks.delete(t.id);
      fileStore(r.server, "did").delete(`${t.id}.mp4`);
      sendJson(r.res, 200, { id: t.id, deleted: true });
    },
  },
  {
    method: "GET",
    path: /^\/did\/files\/(.+)$/,
    handle(r) {
      serveFile(r, "did", r.params[0]);
    },
  },
];
