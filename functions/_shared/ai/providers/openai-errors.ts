// How the OpenAI SDK's errors become the router's error classes. Also used for OpenAI-compatible
// servers, which send the same {"error":{message,type,param,code}} envelope.
import { APIConnectionError, APIConnectionTimeoutError, APIError, APIUserAbortError } from "openai";
import { type ErrorClass, ProviderError, type TokenUsage } from "../types.ts";
import { classifyStatus, parseRetryAfter } from "./common.ts";

/**
 * The error classes the router acts on. The provider's code wins over the status:
 * - context_length_exceeded → context_window (skip to a larger window)
 * - content_policy_violation / content_filter (Azure) → content_policy (never retried)
 * - insufficient_quota (a 429) → auth: the account is out of money, waiting will not help
 * Then the status (see classifyStatus). An error event inside a 200 stream has no status: its
 * type decides, server by default.
 */
export function toProviderError(err: unknown, billedUsage?: TokenUsage, streamRequestId?: string): ProviderError {
  if (err instanceof ProviderError) return err;
  if (err instanceof APIConnectionTimeoutError) return new ProviderError("timeout", err.message, { billedUsage });
  if (err instanceof APIUserAbortError) return new ProviderError("timeout", "the request was aborted by the caller", { billedUsage });
  if (err instanceof APIConnectionError) return new ProviderError("server", `connection error: ${err.message}`, { billedUsage });
  if (err instanceof APIError) {
    const body = (err.error ?? {}) as { code?: unknown; type?: unknown; inner_error?: { code?: unknown } };
    const code = typeof err.code === "string" ? err.code : undefined;
    const type = typeof err.type === "string" ? err.type : undefined;
    let cls: ErrorClass;
    if (code === "context_length_exceeded") cls = "context_window";
    else if (code === "content_policy_violation" || code === "content_filter" || body.inner_error?.code === "ResponsibleAIPolicyViolation") cls = "content_policy";
    else if (code === "insufficient_quota" || type === "insufficient_quota") cls = "auth";
    else if (err.status !== undefined) cls = classifyStatus(err.status);
    else cls = classifyType(type ?? code);
    return new ProviderError(cls, err.message, {
      status: err.status,
      retryAfterMs: parseRetryAfter(err.headers),
      code: code ?? type,
      providerRequestId: err.requestID ?? streamRequestId,
      billedUsage,
    });
  }
  if (err instanceof SyntaxError) return new ProviderError("server", `malformed response: ${err.message}`, { billedUsage });
  return new ProviderError("server", err instanceof Error ? err.message : String(err), { billedUsage });
}

function classifyType(type: string | undefined): ErrorClass {
  switch (type) {
    case "rate_limit_exceeded":
    case "requests":
    case "tokens":
      return "rate_limit";
    case "invalid_request_error":
      return "bad_request";
    case "authentication_error":
    case "permission_error":
      return "auth";
    default:
      return "server";
  }
}
