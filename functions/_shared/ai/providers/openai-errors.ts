// How the OpenAI SDK's errors become the router's error classes. Also used for OpenAI-compatible
// servers, which send the same {"error":{message,type,param,code}} envelope.
import { APIConnectionError, APIConnectionTimeoutError, APIError, APIUserAbortError } from "openai";
import type { ErrorClass } from "../types.ts";
import { classifyStatus } from "./common.ts";
import { sdkErrorMapper } from "./sdk.ts";

/**
 * The error classes the router acts on. The provider's code wins over the status:
 * - context_length_exceeded → context_window (skip to a larger window)
 * - content_policy_violation / content_filter (Azure) → content_policy (never retried)
 * - insufficient_quota (a 429) → auth: the account is out of money, waiting will not help
 * Then the status (see classifyStatus). An error event inside a 200 stream has no status: its
 * type decides, server by default.
 */
export const toProviderError = sdkErrorMapper({ APIError, APIConnectionError, APIConnectionTimeoutError, APIUserAbortError }, (err, streamRequestId) => {
  const body = (err.error ?? {}) as { code?: unknown; type?: unknown; inner_error?: { code?: unknown } };
  const code = typeof err.code === "string" ? err.code : undefined;
  const type = typeof err.type === "string" ? err.type : undefined;
  let errorClass: ErrorClass;
  if (code === "context_length_exceeded") errorClass = "context_window";
  else if (code === "content_policy_violation" || code === "content_filter" || body.inner_error?.code === "ResponsibleAIPolicyViolation") errorClass = "content_policy";
  else if (code === "insufficient_quota" || type === "insufficient_quota") errorClass = "auth";
  else if (err.status !== undefined) errorClass = classifyStatus(err.status);
  else errorClass = classifyType(type ?? code);
  return { errorClass, message: err.message, code: code ?? type, providerRequestId: err.requestID ?? streamRequestId };
});

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
