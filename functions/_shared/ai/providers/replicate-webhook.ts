// Verifies a Replicate webhook delivery (Standard Webhooks, https://replicate.com/docs/topics/webhooks/verify-webhook):
// HMAC-SHA256 keyed with the base64 part of the `whsec_` secret from GET /v1/webhooks/default/secret,
// over `${webhook-id}.${webhook-timestamp}.` followed by the raw body bytes exactly as received;
// `webhook-signature` holds one or more space-separated `v1,<base64>` entries and one must match.
// The comparison is Web Crypto's HMAC verify (constant time), done per entry. Timestamps more than
// five minutes away from now (either way) are refused, so a captured delivery cannot be replayed
// later. A genuine redelivery keeps its webhook-id: deduplicating on it is the caller's job.
import { z } from "zod";
import { secretBytes } from "../../webhooks/signature.ts";

export const REPLICATE_WEBHOOK_TOLERANCE_SECONDS = 5 * 60;

export type ReplicateWebhookErrorCode = "bad_secret" | "missing_headers" | "bad_timestamp" | "stale_timestamp" | "bad_signature" | "malformed_body";

export class ReplicateWebhookError extends Error {
  constructor(
    readonly code: ReplicateWebhookErrorCode,
    message: string,
  ) {
    super(message);
    this.name = "ReplicateWebhookError";
  }
}

/** The prediction object a webhook carries (the same shape as GET /v1/predictions/{id}); unknown keys are kept. */
export const replicateWebhookPrediction = z.looseObject({
  id: z.string().min(1),
  status: z.enum(["starting", "processing", "succeeded", "failed", "canceled", "aborted"]),
  model: z.string().optional(),
  version: z.string().optional(),
  input: z.record(z.string(), z.unknown()).optional(),
  output: z.unknown().optional(),
  error: z.unknown().optional(),
  logs: z.string().nullable().optional(),
  metrics: z.looseObject({ predict_time: z.number().optional() }).nullable().optional(),
  webhook: z.string().optional(),
  created_at: z.string().optional(),
  started_at: z.string().nullable().optional(),
  completed_at: z.string().nullable().optional(),
});

export type ReplicateWebhookPrediction = z.infer<typeof replicateWebhookPrediction>;

const encoder = new TextEncoder();

function keyBytes(secret: string): Uint8Array<ArrayBuffer> {
  try {
    if (secret.startsWith("whsec_")) return secretBytes(secret);
    const bin = atob(secret);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  } catch {
    throw new ReplicateWebhookError("bad_secret", "the webhook secret is not whsec_<base64>");
  }
}

function base64Bytes(b64: string): Uint8Array<ArrayBuffer> | null {
  try {
    const bin = atob(b64);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  } catch {
    return null;
  }
}

/**
 * Checks a delivery and returns its webhook-id (the dedupe key) and the prediction it carries.
 * Throws ReplicateWebhookError: missing_headers, bad_timestamp, stale_timestamp, bad_signature
 * (answer 401/400 and store nothing), malformed_body (signed, but not a prediction), bad_secret.
 */
export async function verifyReplicateWebhook(
  rawBody: Uint8Array | string,
  headers: Headers,
  secret: string,
  now: Date | number = Date.now(),
): Promise<{ webhookId: string; prediction: ReplicateWebhookPrediction }> {
  const id = headers.get("webhook-id");
  const timestamp = headers.get("webhook-timestamp");
  const signature = headers.get("webhook-signature");
  if (!id || !timestamp || !signature) throw new ReplicateWebhookError("missing_headers", "webhook-id, webhook-timestamp and webhook-signature are required");
  if (!/^\d{1,12}$/.test(timestamp)) throw new ReplicateWebhookError("bad_timestamp", "webhook-timestamp is not unix seconds");
  const nowSeconds = Math.floor((typeof now === "number" ? now : now.getTime()) / 1000);
  if (Math.abs(nowSeconds - Number(timestamp)) > REPLICATE_WEBHOOK_TOLERANCE_SECONDS) {
    throw new ReplicateWebhookError("stale_timestamp", "webhook-timestamp is more than 5 minutes from now");
  }

  const body = typeof rawBody === "string" ? encoder.encode(rawBody) : rawBody;
  const prefix = encoder.encode(`${id}.${timestamp}.`);
  const signed = new Uint8Array(prefix.length + body.length);
  signed.set(prefix, 0);
  signed.set(body, prefix.length);

  const key = await crypto.subtle.importKey("raw", keyBytes(secret), { name: "HMAC", hash: "SHA-256" }, false, ["verify"]);
  let valid = false;
  for (const entry of signature.split(" ")) {
    const comma = entry.indexOf(",");
    if (comma < 0 || entry.slice(0, comma) !== "v1") continue;
    const mac = base64Bytes(entry.slice(comma + 1));
    if (!mac) continue;
    // Every entry is checked (no early exit), each in constant time.
    if (await crypto.subtle.verify("HMAC", key, mac, signed)) valid = true;
  }
  if (!valid) throw new ReplicateWebhookError("bad_signature", "no webhook-signature entry matches");

  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(body));
  } catch {
    throw new ReplicateWebhookError("malformed_body", "the body is not UTF-8 JSON");
  }
  const prediction = replicateWebhookPrediction.safeParse(parsed);
  if (!prediction.success) throw new ReplicateWebhookError("malformed_body", `the body is not a prediction: ${prediction.error.issues[0]?.message ?? "invalid"}`);
  return { webhookId: id, prediction: prediction.data };
}
