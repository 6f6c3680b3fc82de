// Small HTTP helpers for the REST routes: JSON replies, and JSON request bodies read the way
// Fastify reads them (size-capped, content type checked, parse errors as 400s).
import type http from "node:http";
import { ERRORS } from "./errors.ts";

/** Fastify's default body limit. */
const JSON_BODY_LIMIT = 1024 * 1024;

export function sendJson(res: http.ServerResponse, status: number, body: unknown, headers: http.OutgoingHttpHeaders = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json; charset=utf-8", "content-length": Buffer.byteLength(text), ...headers });
  res.end(text);
}

function hasBody(req: http.IncomingMessage): boolean {
  return req.headers["transfer-encoding"] !== undefined || Number(req.headers["content-length"] ?? 0) > 0;
}

async function readAll(req: http.IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers["content-length"] ?? 0);
  if (declared > limit) throw ERRORS.InvalidRequest("Request body is too large", "Payload Too Large");
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw ERRORS.InvalidRequest("Request body is too large", "Payload Too Large");
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/**
 * The request's JSON body, or undefined when there is none. A body of another content type is
 * refused as the real server refuses it (415 Invalid Content-Type header).
 */
export async function readJson(req: http.IncomingMessage): Promise<unknown> {
  const type = String(req.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase();
  if (!hasBody(req)) {
    if (type === "application/json" && (req.method === "POST" || req.method === "PUT")) {
      throw ERRORS.InvalidRequest("Body cannot be empty when content-type is set to 'application/json'", "FastifyError");
    }
    return undefined;
  }
  if (type !== "application/json" && !type.endsWith("+json")) {
    // Node dumps the unread body once the reply is sent.
    throw ERRORS.InvalidContentType();
  }
  const raw = await readAll(req, JSON_BODY_LIMIT);
  if (raw.length === 0) throw ERRORS.InvalidRequest("Body cannot be empty when content-type is set to 'application/json'", "FastifyError");
  try {
    return JSON.parse(raw.toString("utf8"));
  } catch (err) {
    throw ERRORS.InvalidRequest((err as Error).message, "SyntaxError");
  }
}

/** Decodes one percent-encoded path part (Fastify decodes route params). */
export function decodePathPart(part: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    throw ERRORS.InvalidRequest(`'${part}' is not a valid url component`);
  }
}
