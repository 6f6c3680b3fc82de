// POST /ai/v1/images/generations, /embeddings and /moderations in OpenAI's wire format, each
// admitted and settled as an AI job that runs inline.
import type { Context } from "hono";
import { z } from "zod";
import { embedCall, imageCall, moderationCall } from "../../_shared/ai/calls.ts";
import { executeSync } from "../../_shared/ai/execute.ts";
import { type InputOf, inputTexts } from "../../_shared/ai/inputs.ts";
import { type AiJob, finishJob } from "../../_shared/ai/job-store.ts";
import { moderate } from "../../_shared/ai/run-job.ts";
import type { StoredFile } from "../../_shared/ai/outputs.ts";
import type { ApiEnv } from "../context.ts";
import { admitInline, executeDeps } from "./admit.ts";
import { openaiError } from "./errors.ts";

const Text = z.string().min(1);
const ImagesBody = z.looseObject({
  model: z.string().min(1).max(100).default("plinth/balanced"),
  prompt: Text,
  n: z.number().int().min(1).max(10).default(1),
  size: z.string().regex(/^\d{2,4}x\d{2,4}$/).default("1024x1024"),
  quality: z.enum(["low", "medium", "high", "standard", "hd", "auto"]).optional(),
  response_format: z.enum(["url", "b64_json"]).default("url"),
});
const EmbeddingsBody = z.looseObject({
  model: z.string().min(1).max(100),
  input: z.union([Text, z.array(Text).min(1)]),
  encoding_format: z.enum(["float", "base64"]).default("float"),
  dimensions: z.number().int().min(1).optional(),
});
const ModerationsBody = z.looseObject({
  model: z.string().min(1).max(100).default("plinth/economy"),
  input: z.union([Text, z.array(Text).min(1)]),
});

function invalid(c: Context, err: z.ZodError) {
  return openaiError(c, 400, err.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; "), "invalid_request_error", null);
}

/** Runs the job's moderation stage (if its org asks for one), then the call; settles or voids. */
async function runInline<T>(c: Context<ApiEnv>, job: AiJob, call: Parameters<typeof executeSync<T>>[4]): Promise<T | Response> {
  const exec = executeDeps(c);
  const { db } = c.get("deps");
  c.header("x-plinth-job-id", job.id);
  try {
    if (job.route.moderation?.length && (await moderate(exec, job))) {
      return openaiError(c, 400, "the input was refused by moderation; nothing was charged", "invalid_request_error", "content_policy_violation");
    }
    const { value } = await executeSync(exec, job, "main", job.route.main, call);
    const ended = await finishJob(db, job.id, "succeeded", { output: value });
    c.header("x-plinth-credits", String(ended.settled_credits ?? 0));
    return value as T;
  } catch (err) {
    await finishJob(db, job.id, "failed", { error: { code: (err as { code?: string }).code ?? "failed", message: (err as Error).message } });
    throw err;
  }
}

/** A signed Storage URL for a stored output (valid an hour, as OpenAI's image URLs are). */
async function signedUrl(c: Context<ApiEnv>, f: StoredFile): Promise<string> {
  const { cfg } = c.get("deps");
  const key = cfg.SUPABASE_SERVICE_ROLE_KEY ?? "";
  const res = await fetch(`${cfg.SUPABASE_URL}/storage/v1/object/sign/${f.bucket}/${f.path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, apikey: key, "content-type": "application/json" },
    body: JSON.stringify({ expiresIn: 3600 }),
  });
  if (!res.ok) throw new Error(`signing ${f.path} failed: ${res.status}`);
  return `${cfg.SUPABASE_URL}/storage/v1${((await res.json()) as { signedURL: string }).signedURL}`;
}

export async function imagesGenerations(c: Context<ApiEnv>) {
  const parsed = ImagesBody.safeParse(await c.req.json().catch(() => undefined));
  if (!parsed.success) return invalid(c, parsed.error);
  const b = parsed.data;
  const quality = b.quality === "auto" ? undefined : b.quality;
  const job = await admitInline(c, "image", b.model, { prompt: b.prompt, n: b.n, size: b.size, ...(quality ? { quality } : {}) });
  const store = { cfg: { url: c.get("deps").cfg.SUPABASE_URL, serviceRoleKey: c.get("deps").cfg.SUPABASE_SERVICE_ROLE_KEY ?? "" }, orgId: job.org_id, jobId: job.id };
  const out = await runInline(c, job, (a, cand) => imageCall(a, cand, job.input as InputOf<"image">, store));
  if (out instanceof Response) return out;
  const { files, revised_prompt } = out as { files: StoredFile[]; revised_prompt: string | null };
  const data = await Promise.all(files.map(async (f) => {
    const url = await signedUrl(c, f);
    if (b.response_format === "url") return { url, revised_prompt };
    const bytes = new Uint8Array(await (await fetch(url)).arrayBuffer());
    let bin = "";
    for (const byte of bytes) bin += String.fromCharCode(byte);
    return { b64_json: btoa(bin), revised_prompt };
  }));
  return c.json({ created: Math.floor(Date.now() / 1000), data });
}

/** Little-endian float32, base64: what the openai SDK asks for by default and decodes. */
function base64Floats(v: number[]): string {
  const buf = new Float32Array(v);
  let bin = "";
  for (const byte of new Uint8Array(buf.buffer)) bin += String.fromCharCode(byte);
  return btoa(bin);
}

export async function embeddings(c: Context<ApiEnv>) {
  const parsed = EmbeddingsBody.safeParse(await c.req.json().catch(() => undefined));
  if (!parsed.success) return invalid(c, parsed.error);
  const b = parsed.data;
  const job = await admitInline(c, "embedding", b.model, { input: b.input, ...(b.dimensions ? { dimensions: b.dimensions } : {}) });
  const out = await runInline(c, job, (a, cand) => embedCall(a, cand, job.input as InputOf<"embedding">));
  if (out instanceof Response) return out;
  const { vectors, usage } = out as { vectors: number[][]; usage: { inputTokens: number } };
  return c.json({
    object: "list",
    data: vectors.map((v, index) => ({ object: "embedding", index, embedding: b.encoding_format === "base64" ? base64Floats(v) : v })),
    model: b.model,
    usage: { prompt_tokens: usage.inputTokens, total_tokens: usage.inputTokens },
  });
}

export async function moderations(c: Context<ApiEnv>) {
  const parsed = ModerationsBody.safeParse(await c.req.json().catch(() => undefined));
  if (!parsed.success) return invalid(c, parsed.error);
  const b = parsed.data;
  const job = await admitInline(c, "moderation", b.model, { input: b.input });
  const texts = inputTexts("moderation", job.input as InputOf<"moderation">);
  const out = await runInline(c, job, (a, cand) => moderationCall(a, cand, texts));
  if (out instanceof Response) return out;
  const { results } = out as { results: { flagged: boolean; categories: Record<string, boolean>; scores: Record<string, number> }[] };
  return c.json({
    id: `modr-${job.id.replaceAll("-", "")}`,
    model: b.model,
    results: results.map((r) => ({ flagged: r.flagged, categories: r.categories, category_scores: r.scores })),
  });
}
