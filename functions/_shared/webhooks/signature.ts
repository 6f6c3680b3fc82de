// Standard Webhooks signatures (https://www.standardwebhooks.com): HMAC-SHA256 over
// `${id}.${timestamp}.${body}` keyed with the secret's bytes, one `v1,<base64>` per secret.
// Web Crypto only, so the same code runs in Deno and Node.

const encoder = new TextEncoder();

function base64ToBytes(b64: string): Uint8Array<ArrayBuffer> {
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function bytesToBase64(bytes: Uint8Array): string {
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}

/** The raw key of a `whsec_<base64>` secret. */
export function secretBytes(secret: string): Uint8Array<ArrayBuffer> {
  if (!secret.startsWith("whsec_")) throw new Error("webhook secrets start with whsec_");
  return base64ToBytes(secret.slice("whsec_".length));
}

export async function signOne(secret: string, id: string, timestamp: number, body: string): Promise<string> {
  const key = await crypto.subtle.importKey("raw", secretBytes(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const mac = await crypto.subtle.sign("HMAC", key, encoder.encode(`${id}.${timestamp}.${body}`));
  return `v1,${bytesToBase64(new Uint8Array(mac))}`;
}

/** The webhook-signature header: a space-separated signature for every valid secret. */
export async function signatureHeader(secrets: string[], id: string, timestamp: number, body: string): Promise<string> {
  if (secrets.length === 0) throw new Error("an endpoint needs at least one valid secret to sign with");
  return (await Promise.all(secrets.map((s) => signOne(s, id, timestamp, body)))).join(" ");
}

/** The three Standard Webhooks headers plus content type, for one delivery. */
export async function webhookHeaders(secrets: string[], id: string, at: Date, body: string): Promise<Record<string, string>> {
  const timestamp = Math.floor(at.getTime() / 1000);
  return {
    "content-type": "application/json",
    "user-agent": "Plinth-Webhooks/1.0",
    "webhook-id": id,
    "webhook-timestamp": String(timestamp),
    "webhook-signature": await signatureHeader(secrets, id, timestamp, body),
  };
}
