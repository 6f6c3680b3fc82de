// A fake of Runway's task API (https://docs.dev.runwayml.com), under /runway: POST
// /runway/v1/image_to_video → {id}; GET /runway/v1/tasks/{id} → PENDING (THROTTLED) → RUNNING
// with progress 0–1 → SUCCEEDED with an MP4 served at /runway/files/<id>.mp4, or FAILED with
// failure + failureCode; DELETE /runway/v1/tasks/{id} cancels or deletes (204; the task cannot be
// fetched again). Requests need `Authorization: Bearer` and `X-Runway-Version`.
//
// "Runway-like" additions the real API does not have (see functions/_shared/ai/providers/runway.ts):
// `Idempotency-Key` on create (a repeated key answers the task it already made) and
// GET /runway/v1/tasks?idempotencyKey=<key> → {"tasks": [task + idempotencyKey + duration]}.
//
// Script keys: creates take from "runway:<model>", reads and deletes of a task from
// "runway:<model>:task", lookups from "runway:list". Modes:
//   ok (default)          options: pollsUntilDone|steps (3), progress [..], throttled (polls, 0),
//                         clock "poll"|"time", stepMs (100), output (URL list instead of the fake's MP4)
//   fail                  FAILED; options failureCode (INTERNAL.BAD_OUTPUT.CODE01), failure
//   refuse                FAILED with SAFETY.INPUT.IMAGE (option failureCode)
//   succeed_after_timeout creates the task, then never answers
//   rate_limit (retryAfter s) | server_error | overloaded | timeout | auth | not_found | bad_request
// Runway sends no webhooks, so webhook_twice / webhook_late behave as ok.
import { type FakeRequest, type FakeRoute, type FakeServerState, hang, sendJson, serverData, type Step } from "./lib/fake-server.ts";
import { answerHttpFailure, credential, fileStore, later, type Lifecycle, lifecycle, mediaFor, runningProgress, scriptedTask, serveFile } from "./lib/tasks.ts";

type Status = "PENDING" | "THROTTLED" | "RUNNING" | "SUCCEEDED" | "FAILED" | "CANCELLED";
type Stage = { status: "THROTTLED" } | { status: "RUNNING"; progress: number } | { status: "SUCCEEDED" } | { status: "FAILED"; failure: string; failureCode: string };

interface Task extends Lifecycle<Stage> {
  id: string;
  key: string;
  model: string;
  idempotencyKey?: string;
  duration: number;
  createdAt: string;
  status: Status;
  progress?: number;
  output?: string[];
  failure?: string;
  failureCode?: string;
  deleted: boolean;
  outputOverride?: string[];
}

interface RunwayState {
  tasks: Map<string, Task>;
  byKey: Map<string, string>;
}

function state(server: FakeServerState): RunwayState {
  return serverData(server, "runway", (): RunwayState => ({ tasks: new Map(), byKey: new Map() }));
}

const errorBody = (_status: number, message: string) => ({ error: message });
const terminal = (s: Status) => s === "SUCCEEDED" || s === "FAILED" || s === "CANCELLED";

function view(t: Task) {
  const out: Record<string, unknown> = { id: t.id, createdAt: t.createdAt, status: t.status };
  if (t.status === "RUNNING" && t.progress !== undefined) out.progress = t.progress;
  if (t.status === "SUCCEEDED") out.output = t.output;
  if (t.status === "FAILED") {
    out.failure = t.failure;
    out.failureCode = t.failureCode;
  }
  return out;
}

function plan(step: Step): Stage[] {
  const throttled: Stage[] = Array.from({ length: Math.max(0, Number(step.throttled ?? 0)) }, () => ({ status: "THROTTLED" }));
  const running: Stage[] = runningProgress(step).map((progress) => ({ status: "RUNNING", progress }));
  if (step.mode === "refuse") {
    return [...throttled, ...running, { status: "FAILED", failureCode: String(step.failureCode ?? "SAFETY.INPUT.IMAGE"), failure: String(step.failure ?? "The input image did not pass content moderation.") }];
  }
  if (step.mode === "fail") {
    return [...throttled, ...running, { status: "FAILED", failureCode: String(step.failureCode ?? "INTERNAL.BAD_OUTPUT.CODE01"), failure: String(step.failure ?? "An unexpected error occurred.") }];
  }
  return [...throttled, ...running, { status: "SUCCEEDED" }];
}

function advance(t: Task, server: FakeServerState): void {
  if (terminal(t.status) || t.deleted || t.next >= t.stages.length) return;
  const stage = t.stages[t.next++];
  t.status = stage.status;
  if (stage.status === "RUNNING") t.progress = stage.progress;
  if (stage.status === "SUCCEEDED") {
    const name = `${t.id}.mp4`;
    fileStore(server, "runway").set(name, mediaFor(name, 0));
    t.output = Array.isArray(t.outputOverride) ? t.outputOverride : [`${server.url}/runway/files/${name}`];
  }
  if (stage.status === "FAILED") {
    t.failure = stage.failure;
    t.failureCode = stage.failureCode;
  }
  if (t.clock === "time" && !terminal(t.status)) later(t.stepMs, () => advance(t, server));
}

function guard(r: FakeRequest): boolean {
  if (!credential(r.req, "Bearer")) {
    sendJson(r.res, 401, { error: "Invalid API key" });
    return false;
  }
  if (!r.req.headers["x-runway-version"]) {
    sendJson(r.res, 400, { error: "The X-Runway-Version header is required" });
    return false;
  }
  return true;
}

function findTask(r: FakeRequest): Task | null {
  const t = state(r.server).tasks.get(r.params[0]);
  if (!t || t.deleted) {
    r.record("runway:unknown:task");
    sendJson(r.res, 404, { error: "Task not found" });
    return null;
  }
  return t;
}

const taskOf = (r: FakeRequest) => scriptedTask(r, guard, findTask, errorBody);

export const runwayRoutes: FakeRoute[] = [
  {
    method: "POST",
    path: /^\/runway\/v1\/image_to_video$/,
    handle(r) {
      if (!guard(r)) return;
      const body = r.json as Record<string, unknown> | undefined;
      const model = typeof body?.model === "string" ? body.model : "";
      const step = r.take(`runway:${model}`);
      if (answerHttpFailure(r, step, errorBody)) return;
      if (!model) return sendJson(r.res, 400, { error: "model: Required" });
      if (typeof body?.promptImage !== "string" && !Array.isArray(body?.promptImage)) return sendJson(r.res, 400, { error: "promptImage: Required" });
      if (typeof body?.ratio !== "string" || !/^\d+:\d+$/.test(body.ratio)) return sendJson(r.res, 400, { error: "ratio: Invalid enum value" });
      const duration = body?.duration === undefined ? 10 : Number(body.duration);
      if (!Number.isFinite(duration) || duration <= 0) return sendJson(r.res, 400, { error: "duration: Invalid duration" });

      const s = state(r.server);
      const idem = typeof r.req.headers["idempotency-key"] === "string" ? (r.req.headers["idempotency-key"] as string) : undefined;
      const existing = idem ? s.byKey.get(idem) : undefined;
      if (existing) return sendJson(r.res, 200, { id: existing });

      const t: Task = {
        id: crypto.randomUUID(),
        key: `runway:${model}`,
        model,
        idempotencyKey: idem,
        duration,
        createdAt: new Date().toISOString(),
        status: "PENDING",
        deleted: false,
        outputOverride: Array.isArray(step.output) ? step.output.map(String) : undefined,
        ...lifecycle(step, plan(step), false),
      };
      s.tasks.set(t.id, t);
      if (idem) s.byKey.set(idem, t.id);
      if (t.clock === "time") later(t.stepMs, () => advance(t, r.server));
      if (step.mode === "succeed_after_timeout") return hang(r.res);
      sendJson(r.res, 200, { id: t.id });
    },
  },
  {
    method: "GET",
    path: /^\/runway\/v1\/tasks$/,
    handle(r) {
      if (!guard(r)) return;
      const step = r.take("runway:list");
      if (answerHttpFailure(r, step, errorBody)) return;
      const key = r.url.searchParams.get("idempotencyKey");
      if (!key) return sendJson(r.res, 400, { error: "idempotencyKey: Required" });
      const s = state(r.server);
      const tasks = [...s.tasks.values()]
        .filter((t) => t.idempotencyKey === key && !t.deleted)
        .map((t) => ({ ...view(t), idempotencyKey: key, duration: t.duration }));
      sendJson(r.res, 200, { tasks });
    },
  },
  {
    method: "GET",
    path: /^\/runway\/v1\/tasks\/([^/]+)$/,
    handle(r) {
      const t = taskOf(r);
      if (!t) return;
      if (t.clock === "poll") advance(t, r.server);
      sendJson(r.res, 200, view(t));
    },
  },
  {
    method: "DELETE",
    path: /^\/runway\/v1\/tasks\/([^/]+)$/,
    handle(r) {
      const t = taskOf(r);
      if (!t) return;
      // Running tasks are cancelled, finished ones deleted; neither can be fetched again.
      if (!terminal(t.status)) t.status = "CANCELLED";
      t.deleted = true;
      fileStore(r.server, "runway").delete(`${t.id}.mp4`);
      r.res.writeHead(204);
      r.res.end();
    },
  },
  {
    method: "GET",
    path: /^\/runway\/files\/(.+)$/,
    handle(r) {
      serveFile(r, "runway", r.params[0]);
    },
  },
];
