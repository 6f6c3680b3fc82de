// Streaming a chat answer to a client through the router. Until the first byte reaches the
// client, a failing deployment falls back like any call; after it, the answer cannot change
// provider (the text would change mid-sentence), so a failure ends the stream with an error
// chunk and the org pays for what it received. A client that goes away is settled for what
// the provider consumed until then.
import { closeFailed, closeSucceeded, openAttempt } from "./attempts.ts";
import { messagesOf } from "./calls.ts";
import { type ExecuteDeps, failureOutcome, nextCall, noteFailure, startWalk, toProviderError } from "./execute.ts";
import type { InputOf } from "./inputs.ts";
import { charge, tokenUnits, type Units } from "./pricing.ts";
import type { Candidate } from "./route.ts";
import { type FinishReason, ProviderError, type TokenUsage } from "./types.ts";

export interface StreamSink {
  /** Sends text to the client. */
  delta(text: string): void;
  /** Aborted when the client disconnects. */
  signal: AbortSignal;
}

export type StreamOutcome =
  | { kind: "done"; text: string; finishReason: FinishReason; usage: TokenUsage; candidate: Candidate }
  /** Failed after the client had text: charge `credits` for what it got. */
  | { kind: "cut"; error: ProviderError; usage: TokenUsage; credits: number; candidate: Candidate }
  | { kind: "disconnected"; usage: TokenUsage; credits: number; candidate: Candidate };

const estimateTokens = (text: string) => Math.ceil(new TextEncoder().encode(text).length / 4);

export async function streamChat(
  deps: ExecuteDeps,
  job: { id: string; org_id: string; route: { main: Candidate[] } },
  input: InputOf<"text">,
  sink: StreamSink,
  opts: { minContext?: number; inputTokensEstimate: number },
): Promise<StreamOutcome> {
  const route = job.route.main;
  const now = deps.now ?? Date.now;
  const walk = await startWalk(deps.db, job.id, "main", route);
  for (;;) {
    const { candidate: c, kind } = await nextCall(deps, route, walk, opts.minContext);
    const attempt = await openAttempt(deps.db, job, "main", kind, c);
    const started = now();
    let text = "";
    let sent = false;
    let usage: Partial<TokenUsage> = {};
    let requestId: string | undefined;
    let finish: FinishReason | undefined;
    let final: TokenUsage | undefined;
    const consumed = (): TokenUsage => ({
      // Anthropic's message_start gives exact input; else the provider's count so far, else our estimate.
      inputTokens: usage.inputTokens ?? opts.inputTokensEstimate,
      outputTokens: Math.max(usage.outputTokens ?? 0, estimateTokens(text)),
    });
    try {
      const adapter = await deps.adapters.get(c.provider_id);
      if (!adapter.chatStream) throw new ProviderError("bad_request", `deployment ${c.deployment_id} cannot stream`);
      const req = {
        model: c.provider_model, messages: messagesOf(input), maxTokens: Math.min(input.max_tokens, c.max_output ?? input.max_tokens),
        temperature: input.temperature, responseFormat: input.response_format,
      };
      for await (const ev of adapter.chatStream(req, sink.signal)) {
        if (ev.type === "start") {
          requestId = ev.providerRequestId;
          if (ev.inputTokens !== undefined) usage.inputTokens = ev.inputTokens;
        } else if (ev.type === "delta") {
          if (!ev.text) continue;
          sent = true;
          text += ev.text;
          sink.delta(ev.text);
        } else if (ev.type === "usage") {
          usage = { ...usage, ...ev.usage };
        } else {
          finish = ev.finishReason;
          final = ev.usage;
        }
      }
      if (sink.signal.aborted) throw new DOMException("client went away", "AbortError");
      if (!finish) throw new ProviderError("server", "the provider's stream was cut before it finished", { providerRequestId: requestId });
      const u = final ?? (usage.inputTokens !== undefined && usage.outputTokens !== undefined ? (usage as TokenUsage) : consumed());
      const units = tokenUnits(u);
      const { credits, costMicros } = charge(units, c.prices);
      await closeSucceeded(deps.db, attempt.id, { status: "succeeded", units, credits, costMicros, providerRequestId: requestId, latencyMs: now() - started }, c.deployment_id);
      return { kind: "done", text, finishReason: finish, usage: u, candidate: c };
    } catch (err) {
      const latencyMs = now() - started;
      if (sink.signal.aborted) {
        const u = consumed();
        const units: Units = tokenUnits(u);
        const { credits, costMicros } = charge(units, c.prices);
        await closeFailed(deps.db, attempt.id, {
          status: "canceled", error: { errorClass: "bad_request", message: "the client disconnected" }, billedUnits: units, costMicros, credits, latencyMs,
        });
        return { kind: "disconnected", usage: u, credits, candidate: c };
      }
      const e = toProviderError(err);
      if (e.details.billedUsage?.inputTokens) usage.inputTokens ??= e.details.billedUsage.inputTokens;
      const billedUnits = usage.inputTokens !== undefined || sent ? tokenUnits(consumed()) : undefined;
      const cost = billedUnits ? charge(billedUnits, c.prices) : { credits: 0, costMicros: 0 };
      await closeFailed(deps.db, attempt.id, {
        status: e.errorClass === "content_policy" ? "refused" : "failed", error: e, billedUnits, costMicros: cost.costMicros,
        credits: sent ? cost.credits : 0, latencyMs,
      }, failureOutcome(route, c, e));
      noteFailure(walk, attempt, c, e);
      if (sent) return { kind: "cut", error: e, usage: consumed(), credits: cost.credits, candidate: c };
    }
  }
}
