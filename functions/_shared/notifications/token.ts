// One-click unsubscribe tokens: base64url(JSON claims) "." base64url(HMAC-SHA256(claims)).
// Stateless, so an email link works without login; the expiry bounds how long a forwarded or
// leaked email can change anyone's settings. Web Crypto only, so it runs in Deno and Node alike.
import { z } from "zod";

export const CHANNELS = ["in_app", "email", "email_digest"] as const;
export type Channel = (typeof CHANNELS)[number];

/** How long an unsubscribe link in an email keeps working. */
export const UNSUBSCRIBE_TTL_SECONDS = 90 * 24 * 3600;

const Claims = z.object({
  v: z.literal(1),
  /** The user whose preference the link changes. */
  u: z.string().uuid(),
  /** Notification type, or null for every type (the digest's link). */
  t: z.string().regex(/^[a-z][a-z_]*(\.[a-z][a-z_]*)+$/).nullable(),
  c: z.enum(CHANNELS),
  /** Expiry, in Unix seconds. */
  e: z.number().int().positive(),
}).strict();

export interface UnsubscribeTarget {
  userId: string;
  type: string | null;
  channel: Channel;
}

export type VerifyResult =
  | { ok: true; target: UnsubscribeTarget; expiresAt: Date }
  | { ok: false; reason: "malformed" | "bad_signature" | "expired" };

const encoder = new TextEncoder();

function toBase64Url(bytes: Uint8Array): string {
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function fromBase64Url(s: string): Uint8Array<ArrayBuffer> | undefined {
  if (!/^[A-Za-z0-9_-]+$/.test(s)) return undefined;
  let bin: string;
  try {
    bin = atob(s.replace(/-/g, "+").replace(/_/g, "/"));
  } catch {
    return undefined; // e.g. a length no base64 can have
  }
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function hmacKey(secret: string): Promise<CryptoKey> {
  return crypto.subtle.importKey("raw", encoder.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign", "verify"]);
}

export async function signUnsubscribeToken(
  secret: string,
  target: UnsubscribeTarget,
  expiresAt: Date = new Date(Date.now() + UNSUBSCRIBE_TTL_SECONDS * 1000),
): Promise<string> {
  const claims = Claims.parse({ v: 1, u: target.userId, t: target.type, c: target.channel, e: Math.floor(expiresAt.getTime() / 1000) });
  const body = toBase64Url(encoder.encode(JSON.stringify(claims)));
  const sig = new Uint8Array(await crypto.subtle.sign("HMAC", await hmacKey(secret), encoder.encode(body)));
  return `${body}.${toBase64Url(sig)}`;
}

export async function verifyUnsubscribeToken(secret: string, token: string, now: Date = new Date()): Promise<VerifyResult> {
  const [body, sigPart, extra] = token.split(".");
  const sig = sigPart === undefined ? undefined : fromBase64Url(sigPart);
  if (!body || !sig || extra !== undefined) return { ok: false, reason: "malformed" };
  // The signature is checked (in constant time, by Web Crypto) before the claims are even parsed.
  if (!(await crypto.subtle.verify("HMAC", await hmacKey(secret), sig, encoder.encode(body)))) {
    return { ok: false, reason: "bad_signature" };
  }
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(fromBase64Url(body)));
  } catch {
    return { ok: false, reason: "malformed" };
  }
  const claims = Claims.safeParse(json);
  if (!claims.success) return { ok: false, reason: "malformed" };
  const expiresAt = new Date(claims.data.e * 1000);
  if (expiresAt <= now) return { ok: false, reason: "expired" };
  return { ok: true, target: { userId: claims.data.u, type: claims.data.t, channel: claims.data.c }, expiresAt };
}
