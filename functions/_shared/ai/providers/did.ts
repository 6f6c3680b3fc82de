// D-ID talks (photo + script → talking-head video) over plain fetch: POST /talks with
// `Authorization: Basic <key>` (D-ID issues the key already in user:password form), GET /talks/{id}
// (created | started | done with result_url and duration | error | rejected), DELETE /talks/{id}.
// Every request has its own deadline and is never retried here.
//
// Idempotency: D-ID has no idempotency key, but a talk keeps the `user_data` string (≤ 1000 chars)
// it was created with. We put our key there, and findByIdempotencyKey pages through
// GET /talks?limit=100 (continuing with `token`) matching it.
//
// Statuses: created → queued, started → running, done → succeeded (one MP4 at result_url,
// durationSeconds = duration), rejected → refused with content_policy (D-ID's moderation refused
// the photo or script; falling back to another provider with the same input is not wanted),
// error → failed with class server unless the error's kind names an input problem (bad_request)
// or moderation (content_policy). D-ID has no cancel for talks.
import { type AsyncSubmitRequest, type AsyncTask, type ErrorClass, type ProviderAdapter, type ProviderConnection, ProviderError } from "../types.ts";
import { eraseTask, fetchJson, mimeFromUrl, seconds } from "./task-http.ts";

export const DID_DEFAULT_BASE_URL = "https://api.d-id.com";
export const DID_DEFAULT_VOICE = "en-US-JennyNeural";
/** Pages of GET /talks (100 each) a lookup reads before giving up. */
export const DID_LOOKUP_MAX_PAGES = 10;
const PROVIDER = "d-id";

/** D-ID's talk object (the fields we read). */
export interface DidTalk {
  id: string;
  status: "created" | "started" | "done" | "error" | "rejected";
  created_at?: string;
  started_at?: string;
  modified_at?: string;
  result_url?: string;
  duration?: number;
  user_data?: string;
  error?: { kind?: string; description?: string } | string;
}

const INPUT_KINDS = /Face|Validation|Invalid|BadRequest|Unsupported|Image|Audio|Script|TextToSpeech|Url|Format|Size/i;
const POLICY_KINDS = /Moderation|Celebrity|Nsfw|Policy|Inappropriate|Safety/i;

function classOfKind(kind: string | undefined, fallback: ErrorClass): ErrorClass {
  if (!kind) return fallback;
  if (POLICY_KINDS.test(kind)) return "content_policy";
  if (INPUT_KINDS.test(kind)) return "bad_request";
  return fallback;
}

function talkError(t: DidTalk): { kind?: string; description?: string } {
  if (typeof t.error === "string") return { description: t.error };
  return t.error ?? {};
}

/** A D-ID talk as an AsyncTask. */
export function didTalkToTask(t: DidTalk): AsyncTask {
  const task: AsyncTask = { providerTaskId: t.id, status: "queued" };
  switch (t.status) {
    case "created":
      return task;
    case "started":
      task.status = "running";
      return task;
    case "done": {
      task.status = "succeeded";
      task.progress = 1;
      task.outputs = t.result_url ? [{ url: t.result_url, mimeType: mimeFromUrl(t.result_url, "video/mp4") }] : [];
      const d = seconds(t.duration);
      if (d !== undefined) task.durationSeconds = d;
      return task;
    }
    case "rejected": {
      const e = talkError(t);
      task.status = "refused";
      task.error = { code: e.kind ?? "rejected", message: e.description ?? "D-ID rejected the talk", errorClass: "content_policy" };
      return task;
    }
    case "error": {
      const e = talkError(t);
      const errorClass = classOfKind(e.kind, "server");
      task.status = errorClass === "content_policy" ? "refused" : "failed";
      task.error = { code: e.kind ?? "error", message: e.description ?? "D-ID could not make the talk", errorClass };
      return task;
    }
    default:
      throw new ProviderError("server", `d-id: unknown talk status ${JSON.stringify((t as { status?: unknown }).status)}`, { code: "unknown_status" });
  }
}

/** The talk body for a normalized request: a photo plus a text script (Microsoft TTS) or an audio file. */
export function didTalkBody(req: AsyncSubmitRequest): Record<string, unknown> {
  const input = req.input;
  const sourceUrl = input.source_url ?? input.image_url;
  if (typeof sourceUrl !== "string" || sourceUrl === "") {
    throw new ProviderError("bad_request", "d-id: a talk needs input.image_url", { code: "missing_image" });
  }
  let script: Record<string, unknown>;
  const script_ = input.script as { text?: unknown; voice?: unknown; language?: unknown } | undefined;
  if (typeof input.audio_url === "string" && input.audio_url !== "") {
    script = { type: "audio", audio_url: input.audio_url };
  } else if (script_ && typeof script_.text === "string" && script_.text !== "") {
    const provider: Record<string, unknown> = { type: "microsoft", voice_id: typeof script_.voice === "string" && script_.voice ? script_.voice : DID_DEFAULT_VOICE };
    if (typeof script_.language === "string" && script_.language) provider.language = script_.language;
    script = { type: "text", input: script_.text, provider };
  } else {
    throw new ProviderError("bad_request", "d-id: a talk needs input.script.text or input.audio_url", { code: "missing_script" });
  }
  const body: Record<string, unknown> = { source_url: sourceUrl, script, user_data: req.idempotencyKey };
  if (req.webhookUrl) body.webhook = req.webhookUrl;
  if (typeof input.name === "string" && input.name !== "") body.name = input.name;
  if (input.config && typeof input.config === "object") body.config = input.config;
  return body;
}

function describeDidError(body: unknown, text: string): { code?: string; message?: string } {
  const b = body as { kind?: unknown; description?: unknown; message?: unknown } | undefined;
  const code = typeof b?.kind === "string" ? b.kind : undefined;
  const message = typeof b?.description === "string" ? b.description : typeof b?.message === "string" ? b.message : text.slice(0, 300);
  return { code, message };
}

const DID_ERRORS = {
  describe: describeDidError,
  policy: (code: string | undefined) => classOfKind(code, "bad_request") === "content_policy",
};

function talkShape(body: unknown): DidTalk {
  const t = body as DidTalk | undefined;
  if (!t || typeof t.id !== "string" || typeof t.status !== "string") throw new ProviderError("server", "d-id: answer is not a talk", { code: "malformed_response" });
  return t;
}

export function createDidAdapter(conn: ProviderConnection): ProviderAdapter {
  const base = (conn.baseUrl ?? DID_DEFAULT_BASE_URL).replace(/\/+$/, "");
  const request = <T>(method: string, path: string, signal: AbortSignal | undefined, body?: unknown) =>
    fetchJson<T>(conn, PROVIDER, `${base}${path}`, { method, headers: { authorization: `Basic ${conn.apiKey}`, accept: "application/json" }, body }, signal, DID_ERRORS);

  return {
    kind: "did",

    async submit(req: AsyncSubmitRequest, signal?: AbortSignal): Promise<AsyncTask> {
      const res = await request<DidTalk>("POST", "/talks", signal, didTalkBody(req));
      return didTalkToTask(talkShape(res.body));
    },

    async get(providerTaskId: string, signal?: AbortSignal): Promise<AsyncTask> {
      const res = await request<DidTalk>("GET", `/talks/${encodeURIComponent(providerTaskId)}`, signal);
      return didTalkToTask(talkShape(res.body));
    },

    async findByIdempotencyKey(key: string, signal?: AbortSignal): Promise<AsyncTask | null> {
      let token: string | undefined;
      for (let n = 1; ; n++) {
        const query = `limit=100${token ? `&token=${encodeURIComponent(token)}` : ""}`;
        const res = await request<{ talks?: unknown; token?: unknown }>("GET", `/talks?${query}`, signal);
        if (!Array.isArray(res.body?.talks)) throw new ProviderError("server", "d-id: list answered without talks", { code: "malformed_response" });
        const hit = res.body.talks.map(talkShape).find((t) => t.user_data === key);
        if (hit) return didTalkToTask(hit);
        token = typeof res.body.token === "string" && res.body.token !== "" ? res.body.token : undefined;
        if (!token) return null;
        if (n >= DID_LOOKUP_MAX_PAGES) {
          throw new ProviderError("server", `d-id: no talk with user_data ${key} in the newest ${n} pages; cannot confirm there is none`, { code: "lookup_incomplete" });
        }
      }
    },

    async delete(providerTaskId: string, signal?: AbortSignal): Promise<void> {
      await eraseTask(() => request("DELETE", `/talks/${encodeURIComponent(providerTaskId)}`, signal));
    },
  };
}
