// The keyless `local` provider: deterministic placeholder output for every modality, with no
// network, so the gateway runs end to end on a laptop. The same request always gives the same
// bytes. It is a provider like any other (the gateway only enables it when ai.providers says
// so); nothing in production branches on "test mode".
//
// - chat: a short reply that echoes the prompt's key words; tokens = ceil(UTF-8 bytes / 4); a JSON
//   request that carries a JSON Schema (a ```json-schema block) gets an instance of it built from
//   the prompt's words (local-json.ts), so structured stages (the deck pipeline) run keyless
// - image: a PNG in two colours derived from the prompt, at the requested size capped at 512 px
// - embed: bag-of-words hashing, so texts that share words point the same way; unit length
// - moderate: flags inputs that contain the marker word (default FLAGME; `FLAGME:hate` picks
//   the category, violence otherwise)
// - speech: a quiet WAV tone about as long as reading the text aloud (15 characters a second)
// - video (async): submit → queued, first get → running, then succeeded with a 1 s MP4;
//   durationSeconds is how long the script takes to read (a talking photo: the speech decides
//   its length, as D-ID reports it), else the requested duration. Tasks live in this module, per process.
// - detectFaces: one face in the middle of the picture; none when the file's bytes contain the
//   marker NOFACE (a PNG text chunk, a JPEG comment); a refusal when they contain FLAGME.
import { createHash } from "node:crypto";
import {
  type AsyncSubmitRequest,
  type AsyncTask,
  type ChatRequest,
  type ChatResult,
  type ChatStreamEvent,
  type FinishReason,
  type ProviderAdapter,
  type ProviderConnection,
  ProviderError,
} from "../types.ts";
import { instanceOf, schemaIn, withoutSchemas } from "./local-json.ts";
import { encodePng, encodeWav, localMp4, type Rgb } from "./local-media.ts";

export interface LocalOptions {
  /** The word that makes moderate() flag an input. */
  flagWord?: string;
}

export const LOCAL_FLAG_WORD = "FLAGME";
/** Bytes of an image that make the local face check find no face. */
export const LOCAL_NO_FACE = "NOFACE";
export const LOCAL_MAX_IMAGE_PX = 512;
export const LOCAL_EMBEDDING_DIMENSIONS = 256;
const SPEECH_CHARS_PER_SECOND = 15;
const SPEECH_MAX_SECONDS = 120;
const DEFAULT_VIDEO_SECONDS = 5;

/** The categories OpenAI's moderation endpoint reports, so results look the same. */
export const MODERATION_CATEGORIES = [
  "harassment", "harassment/threatening", "hate", "hate/threatening", "illicit", "illicit/violent",
  "self-harm", "self-harm/instructions", "self-harm/intent", "sexual", "sexual/minors", "violence", "violence/graphic",
];

const STOPWORDS = new Set(
  "about above after again also because been before being below between both could does doing down during each from further have having here into itself just more most other over same should some such than that their them then there these they this those through under until very what when where which while with would your yours please write make give tell".split(" "),
);

interface LocalTaskState {
  id: string;
  key: string;
  status: AsyncTask["status"];
  durationSeconds: number;
}

/** Tasks of every local adapter in this process, by task id and by our idempotency key. */
const tasks = new Map<string, LocalTaskState>();
const taskByKey = new Map<string, string>();

export function createLocalAdapter(conn: ProviderConnection, opts: LocalOptions = {}): ProviderAdapter {
  const flagWord = opts.flagWord ?? LOCAL_FLAG_WORD;
  const flagRe = new RegExp(`${flagWord.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}(?::([a-z/-]+))?`);
  const requestId = (...parts: unknown[]) => `local-${hash(conn.id, ...parts).slice(0, 16)}`;

  return {
    kind: "local",

    async chat(req) {
      return answer(req, requestId("chat", req));
    },

    async *chatStream(req, signal): AsyncGenerator<ChatStreamEvent> {
      const r = answer(req, requestId("chat", req));
      yield { type: "start", providerRequestId: r.providerRequestId, inputTokens: r.usage.inputTokens, providerModel: req.model };
      for (const piece of split(r.text, 4)) {
        // A caller that aborts gets a cut stream, as from a real provider.
        if (signal?.aborted) return;
        yield { type: "delta", text: piece };
      }
      yield { type: "usage", usage: { ...r.usage } };
      yield { type: "done", finishReason: r.finishReason, usage: r.usage };
    },

    async image(req) {
      const [w, h] = imageSize(req.size);
      const images = Array.from({ length: Math.max(1, req.n) }, (_, i) => {
        const d = hashBytes(req.model, req.prompt, req.negativePrompt ?? "", req.style ?? "", i);
        const a: Rgb = [d[0], d[1], d[2]];
        const b: Rgb = [255 - d[0], d[3], d[4]];
        return { bytes: encodePng(w, h, a, b), mimeType: "image/png" };
      });
      return { images, providerRequestId: requestId("image", req) };
    },

    async embed(req) {
      const dims = req.dimensions ?? LOCAL_EMBEDDING_DIMENSIONS;
      return {
        vectors: req.input.map((text) => embedText(text, dims)),
        usage: { inputTokens: req.input.reduce((n, s) => n + tokens(s), 0) },
        providerRequestId: requestId("embed", req),
      };
    },

    async moderate(req) {
      return {
        results: req.input.map((text) => {
          const m = flagRe.exec(text);
          const hit = m ? (MODERATION_CATEGORIES.includes(m[1] ?? "") ? m[1] : "violence") : undefined;
          return {
            flagged: hit !== undefined,
            categories: Object.fromEntries(MODERATION_CATEGORIES.map((c) => [c, c === hit])),
            scores: Object.fromEntries(MODERATION_CATEGORIES.map((c) => [c, c === hit ? 0.99 : 0.001])),
          };
        }),
        providerRequestId: requestId("moderate", req),
      };
    },

    async speech(req) {
      const characters = [...req.text].length;
      const seconds = speechSeconds(characters);
      const hz = 220 + (hashBytes(req.voice)[0] % 220);
      // Always WAV: there is no MP3 encoder here, and mimeType says what the bytes are.
      return { file: { bytes: encodeWav(seconds, hz), mimeType: "audio/wav" }, seconds, characters, providerRequestId: requestId("speech", req) };
    },

    async detectFaces(req) {
      const marker = (word: string) => indexOfAscii(req.image, word) >= 0;
      if (marker(flagWord)) throw new ProviderError("content_policy", "the local face check refuses images marked FLAGME", { code: "refused" });
      const faces = marker(LOCAL_NO_FACE) ? [] : [{ x: 0.3, y: 0.2, width: 0.4, height: 0.45, score: 0.99 }];
      return { faces, providerRequestId: requestId("faces", req.model, req.image.length) };
    },

    async submit(req: AsyncSubmitRequest) {
      const existing = taskByKey.get(req.idempotencyKey);
      if (existing && tasks.has(existing)) return view(tasks.get(existing)!);
      const task: LocalTaskState = {
        id: `local-task-${hash(conn.id, req.idempotencyKey).slice(0, 20)}`,
        key: req.idempotencyKey,
        status: "queued",
        durationSeconds: videoSeconds(req.input),
      };
      tasks.set(task.id, task);
      taskByKey.set(task.key, task.id);
      return view(task);
    },

    async get(providerTaskId) {
      const task = tasks.get(providerTaskId);
      if (!task) throw new ProviderError("not_found", `no local task ${providerTaskId}`, { status: 404 });
      // One poll sees it running, the next one finished.
      if (task.status === "queued") task.status = "running";
      else if (task.status === "running") task.status = "succeeded";
      return view(task);
    },

    async findByIdempotencyKey(key) {
      const id = taskByKey.get(key);
      const task = id ? tasks.get(id) : undefined;
      return task ? view(task) : null;
    },

    async cancel(providerTaskId) {
      const task = tasks.get(providerTaskId);
      if (!task) throw new ProviderError("not_found", `no local task ${providerTaskId}`, { status: 404 });
      if (task.status === "queued" || task.status === "running") task.status = "canceled";
    },

    async delete(providerTaskId) {
      const task = tasks.get(providerTaskId);
      if (!task) return;
      tasks.delete(task.id);
      taskByKey.delete(task.key);
    },
  };
}

// ---------------------------------------------------------------------------- text

/** Token counts of the local provider: ceil(UTF-8 bytes / 4). */
export function tokens(s: string): number {
  return Math.ceil(utf8Length(s) / 4);
}

function answer(req: ChatRequest, providerRequestId: string): ChatResult {
  const prompt = [...req.messages].reverse().find((m) => m.role === "user")?.content ?? "";
  const words = keywords(prompt);
  const ref = hash(req.model, req.messages).slice(0, 8);
  const budget = Math.max(0, req.maxTokens);
  let text: string;
  let finishReason: FinishReason = "stop";
  const schema = req.responseFormat === "json" ? schemaIn(req.messages.map((m) => m.content)) : null;
  if (schema) {
    // A JSON Schema in the request (local-json.ts): an instance of it, from the prompt's words.
    text = JSON.stringify(instanceOf(schema, contentWords(withoutSchemas(prompt))));
    if (tokens(text) > budget) finishReason = "length";
  } else if (req.responseFormat === "json") {
    // Always valid JSON: drop keywords, then the summary, until it fits the budget.
    const obj: { summary?: string; keywords: string[]; ref: string } = { summary: summarize(words), keywords: [...words], ref };
    const fits = () => tokens(JSON.stringify(obj)) <= budget;
    while (!fits() && obj.keywords.length) obj.keywords.pop();
    if (!fits()) delete obj.summary;
    text = fits() ? JSON.stringify(obj) : "{}";
    if (text !== JSON.stringify({ summary: summarize(words), keywords: words, ref })) finishReason = "length";
  } else {
    text = `${summarize(words)} (local ${ref})`;
    if (tokens(text) > budget) {
      text = truncateBytes(text, budget * 4);
      finishReason = "length";
    }
  }
  const inputTokens = req.messages.reduce((n, m) => n + tokens(m.content), 0);
  return { text, finishReason, usage: { inputTokens, outputTokens: tokens(text) }, providerRequestId, providerModel: req.model };
}

const SHORT_STOPWORDS = new Set("the and for how you our its are was but not all can has had who why any few new one two per via own out use may".split(" "));

/** Every distinct word of three or more letters, in order, minus stopwords (at most 64). */
function contentWords(text: string): string[] {
  const out: string[] = [];
  for (const w of text.match(/[\p{L}\p{N}]{3,}/gu) ?? []) {
    const lower = w.toLowerCase();
    if (!STOPWORDS.has(lower) && !SHORT_STOPWORDS.has(lower) && !out.some((o) => o.toLowerCase() === lower)) out.push(w);
    if (out.length === 64) break;
  }
  return out;
}

function summarize(words: string[]): string {
  return words.length ? `Summary: you asked about ${words.join(", ")}.` : "Summary: an empty prompt.";
}

/** Up to 8 distinct words of four or more letters, in order of appearance, minus stopwords. */
function keywords(text: string): string[] {
  const out: string[] = [];
  for (const w of text.toLowerCase().match(/[\p{L}\p{N}]{4,}/gu) ?? []) {
    if (!STOPWORDS.has(w) && !out.includes(w)) out.push(w);
    if (out.length === 8) break;
  }
  return out;
}

function truncateBytes(s: string, maxBytes: number): string {
  let n = 0;
  let out = "";
  for (const ch of s) {
    n += utf8Length(ch);
    if (n > maxBytes) break;
    out += ch;
  }
  return out;
}

/** At most `parts` pieces, cut after spaces; joined they give back the text. */
function split(text: string, parts: number): string[] {
  const words = text.split(/(?<= )/);
  const per = Math.ceil(words.length / parts);
  const out: string[] = [];
  for (let i = 0; i < words.length; i += per) out.push(words.slice(i, i + per).join(""));
  return out.filter((p) => p.length > 0);
}

// ---------------------------------------------------------------------------- media

function imageSize(size: string): [number, number] {
  const m = /^(\d+)x(\d+)$/.exec(size);
  let [w, h] = m ? [Number(m[1]), Number(m[2])] : [LOCAL_MAX_IMAGE_PX, LOCAL_MAX_IMAGE_PX];
  const scale = Math.min(1, LOCAL_MAX_IMAGE_PX / Math.max(w, h, 1));
  w = Math.max(1, Math.round(w * scale));
  h = Math.max(1, Math.round(h * scale));
  return [w, h];
}

function speechSeconds(characters: number): number {
  return Math.min(SPEECH_MAX_SECONDS, Math.max(0.5, Math.round((characters / SPEECH_CHARS_PER_SECOND) * 100) / 100));
}

function videoSeconds(input: Record<string, unknown>): number {
  // A talking photo lasts as long as its script takes to read.
  const script = input.script as { text?: unknown } | undefined;
  if (typeof script?.text === "string") return Math.ceil(speechSeconds([...script.text].length));
  const asked = Number(input.duration_seconds);
  if (Number.isFinite(asked) && asked > 0) return asked;
  return DEFAULT_VIDEO_SECONDS;
}

function indexOfAscii(bytes: Uint8Array, word: string): number {
  const w = new TextEncoder().encode(word);
  outer: for (let i = 0; i + w.length <= bytes.length; i++) {
    for (let j = 0; j < w.length; j++) if (bytes[i + j] !== w[j]) continue outer;
    return i;
  }
  return -1;
}

function view(task: LocalTaskState): AsyncTask {
  const out: AsyncTask = { providerTaskId: task.id, status: task.status };
  if (task.status === "running") out.progress = 0.5;
  if (task.status === "succeeded") {
    out.progress = 1;
    out.outputs = [{ bytes: localMp4(), mimeType: "video/mp4" }];
    out.durationSeconds = task.durationSeconds;
  }
  return out;
}

// ---------------------------------------------------------------------------- embeddings

/** Feature hashing: each word adds its own pseudo-random direction; the sum is normalized. */
function embedText(text: string, dims: number): number[] {
  const words = text.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? [""];
  const v = new Array<number>(dims).fill(0);
  for (const w of words) {
    const rand = mulberry32(new DataView(hashBytes("word", w).buffer).getUint32(0));
    for (let i = 0; i < dims; i++) v[i] += rand() * 2 - 1;
  }
  const norm = Math.sqrt(v.reduce((n, x) => n + x * x, 0)) || 1;
  return v.map((x) => x / norm);
}

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ---------------------------------------------------------------------------- hashing

function hashBytes(...parts: unknown[]): Uint8Array {
  return new Uint8Array(createHash("sha256").update(JSON.stringify(parts)).digest());
}

function hash(...parts: unknown[]): string {
  return createHash("sha256").update(JSON.stringify(parts)).digest("hex");
}

function utf8Length(s: string): number {
  return new TextEncoder().encode(s).length;
}
