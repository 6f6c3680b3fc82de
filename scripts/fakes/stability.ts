// Fake Stability AI v2beta stable-image API under /stability (the adapter's base URL):
// POST /stability/v2beta/stable-image/generate/{ultra|core|sd3}, multipart in, raw image bytes
// out (Accept: image/*) with finish-reason and seed headers, or {image, finish_reason, seed}
// for Accept: application/json. Errors are {id, name, errors: [...]}. Any key is accepted; a
// missing Authorization header is a 401.
//
// Script key: "stability:<model field>" for sd3, "stability:ultra" / "stability:core" otherwise.
// Modes (every mode takes delayMs and requestId):
//   ok | slow        a PNG coloured from the prompt, finish-reason SUCCESS
//   content_filter   200, finish-reason CONTENT_FILTERED (a filtered image is still an answer)
//   content_policy   403 content_moderation (the prompt was refused; not charged)
//   rate_limit       429 rate_limit_exceeded [retryAfter (null omits; default omitted), retryAfterMs]
//   server_error     500 internal_error       overloaded  503
//   timeout          never answers
//   auth 401 | not_found 404 | bad_request 400 | error [status, name, message]
import { createHash } from "node:crypto";
import { encodePng } from "../../functions/_shared/ai/providers/local-media.ts";
import { hang, sendJson, type FakeRequest, type FakeRoute } from "./lib/fake-server.ts";
import { num, retryHeaders, stepDelay } from "./lib/ai-wire.ts";

export const stabilityRoutes: FakeRoute[] = [
  { method: "POST", path: /^\/stability\/v2beta\/stable-image\/generate\/(ultra|core|sd3)$/, handle: generate },
];

function errorBody(name: string, errors: string[]) {
  return { id: createHash("md5").update(`${name}${Math.random()}`).digest("hex"), name, errors };
}

async function generate(r: FakeRequest) {
  const endpoint = r.params[0];
  let form: FormData;
  try {
    form = await new Response(new Uint8Array(r.raw), { headers: { "content-type": r.req.headers["content-type"] ?? "" } }).formData();
  } catch {
    r.record(`stability:${endpoint}`);
    return sendJson(r.res, 400, errorBody("bad_request", ["the request must be multipart/form-data"]));
  }
  const field = (name: string) => {
    const v = form.get(name);
    return typeof v === "string" ? v : undefined;
  };
  const key = `stability:${endpoint === "sd3" ? field("model") ?? "sd3.5-large" : endpoint}`;
  const requestId = createHash("md5").update(`${key}${Date.now()}${Math.random()}`).digest("hex");
  if (!/^Bearer\s+\S+/.test(r.req.headers.authorization ?? "")) {
    r.record(key);
    return sendJson(r.res, 401, errorBody("unauthorized", ["authorization: missing or invalid API key"]), { "x-request-id": requestId });
  }
  const step = r.take(key);
  const headers = { "x-request-id": typeof step.requestId === "string" ? step.requestId : requestId };
  if (step.mode === "timeout") return hang(r.res);
  await stepDelay(step);

  switch (step.mode) {
    case "ok":
    case "slow":
    case "content_filter":
      break;
    case "content_policy":
      return sendJson(r.res, 403, errorBody("content_moderation", ["Your request was flagged by our content moderation system, as a result your request was denied and you were not charged."]), headers);
    case "rate_limit":
      return sendJson(r.res, 429, errorBody("rate_limit_exceeded", ["You have exceeded the rate limit of 150 requests within a 10 second period."]), { ...headers, ...retryHeaders(step, null) });
    case "server_error":
      return sendJson(r.res, 500, errorBody("internal_error", ["An unexpected server error occurred, please try again."]), headers);
    case "overloaded":
      return sendJson(r.res, 503, errorBody("service_unavailable", ["The service is temporarily unavailable."]), { ...headers, ...retryHeaders(step, null) });
    case "auth":
      return sendJson(r.res, 401, errorBody("unauthorized", ["authorization: invalid API key"]), headers);
    case "not_found":
      return sendJson(r.res, 404, errorBody("not_found", [`model: ${field("model") ?? endpoint} not found`]), headers);
    case "bad_request":
      return sendJson(r.res, 400, errorBody("bad_request", [String(step.message ?? "aspect_ratio: must be one of 21:9, 16:9, 3:2, 5:4, 1:1, 4:5, 2:3, 9:16, 9:21")]), headers);
    case "error":
      return sendJson(r.res, num(step.status, 500), errorBody(String(step.name ?? "internal_error"), [String(step.message ?? "scripted error")]), { ...headers, ...retryHeaders(step, null) });
    default:
      return sendJson(r.res, 400, errorBody("bad_request", [`fake Stability: unknown mode ${step.mode}`]), headers);
  }

  const prompt = field("prompt");
  if (!prompt) return sendJson(r.res, 400, errorBody("bad_request", ["prompt: is required"]), headers);
  const finish = step.mode === "content_filter" ? "CONTENT_FILTERED" : "SUCCESS";
  const d = createHash("sha256").update(prompt).digest();
  // A filtered image comes back blurred: here, one flat grey.
  const png = finish === "CONTENT_FILTERED" ? encodePng(16, 16, [128, 128, 128], [128, 128, 128]) : encodePng(16, 16, [d[0], d[1], d[2]], [d[3], d[4], d[5]]);
  const seed = String(d.readUInt32BE(6) % 4294967294);
  if ((r.req.headers.accept ?? "").includes("application/json")) {
    return sendJson(r.res, 200, { image: Buffer.from(png).toString("base64"), finish_reason: finish, seed: Number(seed) }, headers);
  }
  r.res.writeHead(200, { ...headers, "content-type": "image/png", "content-length": png.length, "finish-reason": finish, seed });
  r.res.end(Buffer.from(png));
}
