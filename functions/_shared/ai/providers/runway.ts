// Runway image-to-video tasks over plain fetch (no SDK): POST /v1/image_to_video → {id}, poll
// GET /v1/tasks/{id} (PENDING | THROTTLED | RUNNING with progress 0–1 | SUCCEEDED with output URLs
// | FAILED with failure and a dot-separated failureCode | CANCELLED), DELETE /v1/tasks/{id} cancels a
// running task or deletes a finished one (either way it cannot be fetched again). Every request
// carries `Authorization: Bearer` and `X-Runway-Version: 2024-11-06`, has its own deadline, and
// is never retried here.
//
// The "Runway-like" part: the real API has no idempotency key and no way to list tasks, so a
// submit whose answer was lost cannot be found there. This adapter sends `Idempotency-Key: <our
// key>` on create and looks a key up with GET /v1/tasks?idempotencyKey=<key> → {"tasks": [...]}
// (each task echoes the `duration` it was created with). Plinth's fake and any gateway in front
// of Runway that offers this pair make the "outcome unknown" rule work; against Runway itself the
// lookup is answered 4xx, which throws — the attempt stays unknown rather than being resubmitted.
//
// Runway bills the requested `duration` and produces exactly that many seconds, but a task does
// not echo its input, so the task reference this adapter hands out is "<task id>:<seconds>s" and
// durationSeconds on success is read from it. A bare task id is accepted too (no duration then).
import { type AsyncSubmitRequest, type AsyncTask, type ErrorClass, type ProviderAdapter, type ProviderConnection, ProviderError } from "../types.ts";
import { eraseTask, fetchJson, mimeFromUrl, seconds } from "./task-http.ts";

export const RUNWAY_API_VERSION = "2024-11-06";
export const RUNWAY_DEFAULT_BASE_URL = "https://api.dev.runwayml.com";
const PROVIDER = "runway";

/** Runway's task object. */
export interface RunwayTask {
  id: string;
  status: "PENDING" | "THROTTLED" | "RUNNING" | "SUCCEEDED" | "FAILED" | "CANCELLED";
  createdAt?: string;
  progress?: number;
  output?: string[];
  failure?: string;
  failureCode?: string;
  /** Runway-like lookup results only: the duration the task was created with. */
  duration?: number;
}

/** Our task reference: the Runway task id, plus the requested seconds when known. */
export function runwayTaskRef(id: string, durationSeconds?: number): string {
  return durationSeconds === undefined ? id : `${id}:${durationSeconds}s`;
}

export function parseRunwayTaskRef(ref: string): { id: string; durationSeconds?: number } {
  const m = /^(.+):(\d+(?:\.\d+)?)s$/.exec(ref);
  return m ? { id: m[1], durationSeconds: Number(m[2]) } : { id: ref };
}

/** Normalized aspect ratios → the pixel ratios Runway's gen4 models take; "W:H" in pixels passes through. */
const RATIOS: Record<string, string> = {
  "16:9": "1280:720",
  "9:16": "720:1280",
  "1:1": "960:960",
  "4:3": "1104:832",
  "3:4": "832:1104",
  "21:9": "1584:672",
};

export function runwayRatio(ratio: unknown): string {
  if (typeof ratio !== "string" || ratio === "") return RATIOS["16:9"];
  if (RATIOS[ratio]) return RATIOS[ratio];
  if (/^\d{3,4}:\d{3,4}$/.test(ratio)) return ratio;
  throw new ProviderError("bad_request", `runway: unsupported ratio ${JSON.stringify(ratio)}`, { code: "bad_ratio" });
}

/** Whether a failureCode is a moderation refusal (SAFETY.INPUT.*, SAFETY.OUTPUT.*, INPUT_PREPROCESSING.SAFETY.*). */
export function isRunwaySafetyCode(code: string | undefined): boolean {
  return typeof code === "string" && /(^|\.)SAFETY(\.|$)/.test(code);
}

/**
 * The class of a non-safety failureCode: INTERNAL.* (including INTERNAL.BAD_OUTPUT, "may retry but
 * unlikely to succeed") and INPUT_PREPROCESSING.INTERNAL are Runway's side; ASSET.* and other
 * INPUT_PREPROCESSING.* codes are the input's.
 */
function classOfFailureCode(code: string): ErrorClass {
  if (/(^|\.)INTERNAL(\.|$)/.test(code)) return "server";
  if (/^(ASSET|INPUT_PREPROCESSING)(\.|$)/.test(code)) return "bad_request";
  return "server";
}

/** A Runway task as an AsyncTask; `durationSeconds` is what the task was created with, if known. */
export function runwayTaskToTask(t: RunwayTask, durationSeconds?: number): AsyncTask {
  const task: AsyncTask = { providerTaskId: runwayTaskRef(t.id, durationSeconds), status: "queued" };
  switch (t.status) {
    case "PENDING":
    case "THROTTLED":
      return task;
    case "RUNNING": {
      task.status = "running";
      const p = seconds(t.progress);
      if (p !== undefined) task.progress = Math.min(1, p);
      return task;
    }
    case "SUCCEEDED":
      task.status = "succeeded";
      task.progress = 1;
      task.outputs = (t.output ?? []).map((url) => ({ url, mimeType: mimeFromUrl(url, "video/mp4") }));
      if (durationSeconds !== undefined) task.durationSeconds = durationSeconds;
      return task;
    case "FAILED": {
      const code = t.failureCode ?? "FAILED";
      const message = t.failure ?? "task failed";
      if (isRunwaySafetyCode(t.failureCode)) {
        task.status = "refused";
        task.error = { code, message, errorClass: "content_policy" };
      } else {
        task.status = "failed";
        task.error = { code, message, errorClass: classOfFailureCode(code) };
      }
      return task;
    }
    case "CANCELLED":
      task.status = "canceled";
      return task;
    default:
      throw new ProviderError("server", `runway: unknown task status ${JSON.stringify((t as { status?: unknown }).status)}`, { code: "unknown_status" });
  }
}

function describeRunwayError(body: unknown, text: string): { code?: string; message?: string } {
  const b = body as { error?: unknown; failureCode?: unknown; code?: unknown; issues?: unknown } | undefined;
  const code = typeof b?.failureCode === "string" ? b.failureCode : typeof b?.code === "string" ? b.code : undefined;
  const message = typeof b?.error === "string" ? b.error : text.slice(0, 300);
  return { code, message };
}

const RUNWAY_ERRORS = {
  describe: describeRunwayError,
  policy: (code: string | undefined, message: string) => isRunwaySafetyCode(code) || /moderation|safety|content polic/i.test(message),
  // Runway answers 502 and 503 when shedding load and 504 when overloaded; all three may be retried.
  statusClass: (status: number) => (status === 502 || status === 503 || status === 504 ? ("overloaded" as const) : undefined),
};

function taskShape(body: unknown): RunwayTask {
  const t = body as RunwayTask | undefined;
  if (!t || typeof t.id !== "string" || typeof t.status !== "string") {
    throw new ProviderError("server", "runway: answer is not a task", { code: "malformed_response" });
  }
  return t;
}

export function createRunwayAdapter(conn: ProviderConnection): ProviderAdapter {
  const base = (conn.baseUrl ?? RUNWAY_DEFAULT_BASE_URL).replace(/\/+$/, "");
  const headers = () => ({
    authorization: `Bearer ${conn.apiKey}`,
    "x-runway-version": RUNWAY_API_VERSION,
    accept: "application/json",
  });
  const request = <T>(method: string, path: string, signal: AbortSignal | undefined, body?: unknown, extra: Record<string, string> = {}) =>
    fetchJson<T>(conn, PROVIDER, `${base}${path}`, { method, headers: { ...headers(), ...extra }, body }, signal, RUNWAY_ERRORS);

  return {
    kind: "runway",

    async submit(req: AsyncSubmitRequest, signal?: AbortSignal): Promise<AsyncTask> {
      const input = req.input;
      const promptImage = input.promptImage ?? input.image_url;
      if (typeof promptImage !== "string" && !Array.isArray(promptImage)) {
        throw new ProviderError("bad_request", "runway: image_to_video needs input.image_url", { code: "missing_image" });
      }
      const duration = seconds(input.duration_seconds ?? input.duration) ?? 5;
      const body: Record<string, unknown> = {
        model: req.model,
        promptImage,
        ratio: runwayRatio(input.ratio),
        duration,
      };
      const promptText = input.promptText ?? input.prompt;
      if (typeof promptText === "string" && promptText !== "") body.promptText = promptText;
      if (typeof input.seed === "number") body.seed = input.seed;
      if (input.contentModeration && typeof input.contentModeration === "object") body.contentModeration = input.contentModeration;

      const res = await request<{ id?: unknown }>("POST", "/v1/image_to_video", signal, body, { "idempotency-key": req.idempotencyKey });
      if (typeof res.body?.id !== "string") throw new ProviderError("server", "runway: create answered without a task id", { code: "malformed_response" });
      return { providerTaskId: runwayTaskRef(res.body.id, duration), status: "queued" };
    },

    async get(providerTaskId: string, signal?: AbortSignal): Promise<AsyncTask> {
      const { id, durationSeconds } = parseRunwayTaskRef(providerTaskId);
      const res = await request<RunwayTask>("GET", `/v1/tasks/${encodeURIComponent(id)}`, signal);
      return runwayTaskToTask(taskShape(res.body), durationSeconds);
    },

    async findByIdempotencyKey(key: string, signal?: AbortSignal): Promise<AsyncTask | null> {
      const res = await request<{ tasks?: unknown }>("GET", `/v1/tasks?idempotencyKey=${encodeURIComponent(key)}`, signal);
      if (!Array.isArray(res.body?.tasks)) throw new ProviderError("server", "runway: lookup answered without a task list", { code: "malformed_response" });
      const [found] = res.body.tasks.map(taskShape);
      return found ? runwayTaskToTask(found, seconds(found.duration)) : null;
    },

    async cancel(providerTaskId: string, signal?: AbortSignal): Promise<void> {
      await request("DELETE", `/v1/tasks/${encodeURIComponent(parseRunwayTaskRef(providerTaskId).id)}`, signal);
    },

    async delete(providerTaskId: string, signal?: AbortSignal): Promise<void> {
      await eraseTask(() => request("DELETE", `/v1/tasks/${encodeURIComponent(parseRunwayTaskRef(providerTaskId).id)}`, signal));
    },
  };
}
