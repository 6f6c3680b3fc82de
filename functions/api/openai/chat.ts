// POST /ai/v1/chat/completions, as OpenAI answers it: a chat.completion, or with stream: true a
// text/event-stream of chat.completion.chunk objects ending in `data: [DONE]` (with a usage
// chunk first when stream_options.include_usage is set). The response starts only once the
// first token is in hand, so every failure before it can still fall back or become a proper
// HTTP error; a failure after it ends the stream with an error chunk.
import type { Context } from "hono";
import { z } from "zod";
import { textCall } from "../../_shared/ai/calls.ts";
import { executeSync } from "../../_shared/ai/execute.ts";
import { estimatedTokens, type InputOf } from "../../_shared/ai/inputs.ts";
import { type AiJob, finishJob } from "../../_shared/ai/job-store.ts";
import { moderate } from "../../_shared/ai/run-job.ts";
import { type StreamOutcome, streamChat } from "../../_shared/ai/stream.ts";
import type { TokenUsage } from "../../_shared/ai/types.ts";
import type { ApiEnv } from "../context.ts";
import { admitInline, completionId, executeDeps } from "./admit.ts";
import { openaiError } from "./errors.ts";

const Part = z.looseObject({ type: z.string(), text: z.string().optional() });
export const ChatBody = z.looseObject({
  model: z.string().min(1).max(100),
  messages: z.array(z.looseObject({
    role: z.enum(["system", "developer", "user", "assistant"]),
    content: z.union([z.string(), z.array(Part)]).nullable(),
  })).min(1).max(500),
  max_tokens: z.number().int().min(1).optional(),
  max_completion_tokens: z.number().int().min(1).optional(),
  temperature: z.number().min(0).max(2).optional(),
  n: z.literal(1).optional(),
  stream: z.boolean().optional(),
  stream_options: z.looseObject({ include_usage: z.boolean().optional() }).nullable().optional(),
  response_format: z.looseObject({ type: z.enum(["text", "json_object", "json_schema"]) }).optional(),
});
type ChatBody = z.infer<typeof ChatBody>;

/** Without max_tokens, the reservation needs a bound: this, capped by each model's own maximum. */
const DEFAULT_MAX_TOKENS = 4096;

function toInput(b: ChatBody): InputOf<"text"> {
  return {
    messages: b.messages.map((m) => ({
      role: m.role === "developer" ? "system" : m.role,
      content: typeof m.content === "string" ? m.content : (m.content ?? []).map((p) => p.text ?? "").join(""),
    })),
    max_tokens: b.max_completion_tokens ?? b.max_tokens ?? DEFAULT_MAX_TOKENS,
    temperature: b.temperature,
    response_format: b.response_format && b.response_format.type !== "text" ? "json" : "text",
  };
}

const usageOf = (u: TokenUsage) => ({
  prompt_tokens: u.inputTokens,
  completion_tokens: u.outputTokens,
  total_tokens: u.inputTokens + u.outputTokens,
  prompt_tokens_details: { cached_tokens: u.cachedInputTokens ?? 0 },
  completion_tokens_details: { reasoning_tokens: u.reasoningTokens ?? 0 },
});

export async function chatCompletions(c: Context<ApiEnv>) {
  const parsed = ChatBody.safeParse(await c.req.json().catch(() => undefined));
  if (!parsed.success) return openaiError(c, 400, parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; "), "invalid_request_error", null);
  const body = parsed.data;
  const job = await admitInline(c, "text", body.model, toInput(body));
  const exec = executeDeps(c);
  const { db } = c.get("deps");
  const input = job.input as InputOf<"text">;
  const minContext = estimatedTokens("text", input) + input.max_tokens;
  c.header("x-plinth-job-id", job.id);
  try {
    if (job.route.moderation?.length && (await moderate(exec, job))) {
      return openaiError(c, 400, "the input was refused by moderation; nothing was charged", "invalid_request_error", "content_policy_violation");
    }
    if (!body.stream) {
      const { value } = await executeSync(exec, job, "main", job.route.main, (a, cand) => textCall(a, cand, input, () => {}), { minContext });
      const ended = await finishJob(db, job.id, "succeeded", { output: value });
      c.header("x-plinth-credits", String(ended.settled_credits ?? 0));
      return c.json({
        id: completionId(job), object: "chat.completion", created: Math.floor(Date.now() / 1000), model: body.model, system_fingerprint: null,
        choices: [{ index: 0, message: { role: "assistant", content: value!.text, refusal: null }, logprobs: null, finish_reason: value!.finish_reason }],
        usage: usageOf(value!.usage),
      });
    }
    return await streamResponse(c, job, body, input, minContext);
  } catch (err) {
    await finishJob(db, job.id, "failed", { error: { code: (err as { code?: string }).code ?? "failed", message: (err as Error).message } });
    throw err;
  }
}

async function streamResponse(c: Context<ApiEnv>, job: AiJob, body: ChatBody, input: InputOf<"text">, minContext: number): Promise<Response> {
  const { db } = c.get("deps");
  const encoder = new TextEncoder();
  const id = completionId(job);
  const created = Math.floor(Date.now() / 1000);
  const chunk = (delta: Record<string, unknown>, finish: string | null) =>
    ({ id, object: "chat.completion.chunk", created, model: body.model, system_fingerprint: null, choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }], usage: null });
  const client = new AbortController();
  c.req.raw.signal?.addEventListener("abort", () => client.abort());
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  const readable = new ReadableStream<Uint8Array>({
    start: (ctl) => void (controller = ctl),
    cancel: () => client.abort(),
  });
  const send = (data: unknown) => {
    try {
      controller.enqueue(encoder.encode(`data: ${typeof data === "string" ? data : JSON.stringify(data)}\n\n`));
    } catch {
      client.abort(); // the stream is closed: the client went away
    }
  };
  let sentFirst = false;
  let started!: () => void;
  const firstByte = new Promise<void>((r) => (started = r));
  const outcome = streamChat(executeDeps(c), job, input, {
    delta: (text) => {
      if (!sentFirst) {
        sentFirst = true;
        send(chunk({ role: "assistant", content: "" }, null));
        started();
      }
      send(chunk({ content: text }, null));
    },
    signal: client.signal,
  }, { minContext, inputTokensEstimate: estimatedTokens("text", input) });

  // The response starts with the first token; a failure before it is an HTTP error.
  const first = await Promise.race([firstByte.then(() => undefined), outcome]);
  // Finished without a single token (an empty answer): still a valid, complete stream.
  if (first && !sentFirst) send(chunk({ role: "assistant", content: "" }, null));
  void (async () => {
    let o: StreamOutcome | undefined;
    try {
      o = first ?? (await outcome);
    } catch (err) {
      send({ error: { message: (err as Error).message, type: "server_error", param: null, code: "stream_failed" } });
      await finishJob(db, job.id, "failed", { error: { code: "stream_failed", message: (err as Error).message } }).catch(() => {});
      controller.close();
      return;
    }
    await finishStream(db, job, o, body, chunk, send).catch(() => {});
    try {
      controller.close();
    } catch { /* already closed by the client */ }
  })();
  c.header("content-type", "text/event-stream");
  c.header("cache-control", "no-cache");
  return c.body(readable, 200);
}

async function finishStream(
  db: ApiEnv["Variables"]["deps"]["db"],
  job: AiJob,
  o: StreamOutcome,
  body: ChatBody,
  chunk: (delta: Record<string, unknown>, finish: string | null) => unknown,
  send: (data: unknown) => void,
) {
  // The charge is settled before the stream's last event: once a client has seen [DONE] (or the
  // error), what the job cost is final and readable.
  if (o.kind === "done") {
    send(chunk({}, o.finishReason));
    if (body.stream_options?.include_usage) send({ ...(chunk({}, null) as object), choices: [], usage: usageOf(o.usage) });
    await finishJob(db, job.id, "succeeded", { output: { text: "(streamed)", finish_reason: o.finishReason, usage: o.usage, model: o.candidate.model_id } });
    send("[DONE]");
  } else if (o.kind === "cut") {
    await finishJob(db, job.id, "failed", { error: { code: o.error.errorClass, message: o.error.message }, charge: o.credits });
    send({ error: { message: `${o.error.message} (the answer is incomplete)`, type: "server_error", param: null, code: o.error.errorClass } });
  } else {
    await finishJob(db, job.id, "canceled", { error: { code: "client_disconnected", message: "the client disconnected" }, charge: o.credits });
  }
}
