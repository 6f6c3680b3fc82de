// What the adapters built on the official Stainless-generated SDKs (openai, @anthropic-ai/sdk)
// share: how a connection configures the client, and how what the client throws becomes a
// ProviderError. Both SDKs have the same error classes; only an API error (an HTTP answer, or an
// error event inside a stream) is read the provider's way, by the adapter.
import { type ErrorClass, type ProviderConnection, ProviderError, type TokenUsage } from "../types.ts";
import { parseRetryAfter } from "./common.ts";

/**
 * Client options for a connection. maxRetries is 0: the router is the only retry loop, and an
 * SDK-internal retry would be a second billed call inside one attempt.
 */
export function sdkClientOptions(conn: ProviderConnection) {
  return { apiKey: conn.apiKey, baseURL: conn.baseUrl ?? undefined, timeout: conn.timeoutMs, maxRetries: 0, fetch: conn.fetch };
}

/** The fields of an SDK's APIError that are the same in both SDKs. */
interface SdkApiError extends Error {
  readonly status: number | undefined;
  readonly headers: Headers | undefined;
}

type ErrorType<E> = abstract new (...args: never[]) => E;

/** One SDK's error classes (APIConnectionTimeoutError, APIUserAbortError and APIConnectionError are APIErrors). */
export interface SdkErrorClasses<E extends SdkApiError> {
  APIError: ErrorType<E>;
  APIConnectionError: ErrorType<Error>;
  APIConnectionTimeoutError: ErrorType<Error>;
  APIUserAbortError: ErrorType<Error>;
}

/** How an adapter reads an API error: its class, message, code and request id. */
export interface ApiErrorReading {
  errorClass: ErrorClass;
  message: string;
  code?: string;
  providerRequestId?: string;
}

/**
 * The adapter's toProviderError: `billedUsage` is what a failed stream had already been billed,
 * `streamRequestId` the request id of the stream an error event arrived in (it has no headers).
 */
export function sdkErrorMapper<E extends SdkApiError>(
  sdk: SdkErrorClasses<E>,
  readApiError: (err: E, streamRequestId?: string) => ApiErrorReading,
): (err: unknown, billedUsage?: TokenUsage, streamRequestId?: string) => ProviderError {
  return (err, billedUsage, streamRequestId) => {
    if (err instanceof ProviderError) return err;
    // The errors without an answer first: they are APIErrors too.
    if (err instanceof sdk.APIConnectionTimeoutError) return new ProviderError("timeout", err.message, { billedUsage });
    if (err instanceof sdk.APIUserAbortError) return new ProviderError("timeout", "the request was aborted by the caller", { billedUsage });
    if (err instanceof sdk.APIConnectionError) return new ProviderError("server", `connection error: ${err.message}`, { billedUsage });
    if (err instanceof sdk.APIError) {
      const { errorClass, message, code, providerRequestId } = readApiError(err, streamRequestId);
      return new ProviderError(errorClass, message, { status: err.status, retryAfterMs: parseRetryAfter(err.headers), code, providerRequestId, billedUsage });
    }
    if (err instanceof SyntaxError) return new ProviderError("server", `malformed response: ${err.message}`, { billedUsage });
    return new ProviderError("server", err instanceof Error ? err.message : String(err), { billedUsage });
  };
}
