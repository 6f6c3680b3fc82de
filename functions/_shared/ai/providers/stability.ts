// Stability AI's v2beta stable-image API. There is no official JS SDK, so this is plain fetch
// with a multipart body. One request makes one image: n images are n requests, one after the
// other (parallel requests would only trip the 150-per-10-s limit sooner). A filtered image
// still answers 200, so the finish-reason header is what tells a refusal apart.
import { type ImageRequest, type ImageResult, type ProviderAdapter, type ProviderConnection, ProviderError } from "../types.ts";
import { classifyStatus, deadline, fromBase64, parseRetryAfter } from "./common.ts";

const DEFAULT_BASE_URL = "https://api.stability.ai";
const ASPECT_RATIOS = ["21:9", "16:9", "3:2", "5:4", "1:1", "4:5", "2:3", "9:16", "9:21"];

type Endpoint = "ultra" | "core" | "sd3";

/**
 * Which generate endpoint a model name means: sd3* (sd3.5-large, sd3.5-medium, ...) go to
 * /sd3 with the name in the `model` field; names containing "ultra" or "core"
 * (stable-image-ultra, stable-image-core) go to their own endpoints.
 */
export function stabilityEndpoint(model: string): Endpoint | null {
  if (/^sd3/i.test(model)) return "sd3";
  if (/ultra/i.test(model)) return "ultra";
  if (/core/i.test(model)) return "core";
  return null;
}

/** The allowed aspect ratio nearest to a "WxH" size (or the ratio itself when given as "W:H"). */
export function aspectRatio(size: string): string {
  if (ASPECT_RATIOS.includes(size)) return size;
  const m = /^(\d+)\s*[x×:]\s*(\d+)$/.exec(size);
  if (!m || Number(m[1]) === 0 || Number(m[2]) === 0) return "1:1";
  const want = Math.log(Number(m[1]) / Number(m[2]));
  const dist = (r: string) => {
    const [w, h] = r.split(":").map(Number);
    return Math.abs(Math.log(w / h) - want);
  };
  return ASPECT_RATIOS.reduce((best, r) => (dist(r) < dist(best) ? r : best));
}

export function createStabilityAdapter(conn: ProviderConnection): ProviderAdapter {
  const base = (conn.baseUrl ?? DEFAULT_BASE_URL).replace(/\/+$/, "");
  const doFetch = conn.fetch ?? fetch;

  async function generateOne(req: ImageRequest, endpoint: Endpoint, signal?: AbortSignal) {
    const form = new FormData();
    form.append("prompt", req.prompt);
    if (req.negativePrompt) form.append("negative_prompt", req.negativePrompt);
    form.append("aspect_ratio", aspectRatio(req.size));
    form.append("output_format", "png");
    if (endpoint === "sd3") form.append("model", req.model);
    if (endpoint === "core" && req.style) form.append("style_preset", req.style);

    const timeout = deadline(conn.timeoutMs, signal);
    let res: Response;
    let bytes: Uint8Array;
    try {
      res = await doFetch(`${base}/v2beta/stable-image/generate/${endpoint}`, {
        method: "POST",
        headers: { authorization: `Bearer ${conn.apiKey}`, accept: "image/*" },
        body: form,
        signal: timeout,
      });
      bytes = new Uint8Array(await res.arrayBuffer());
    } catch (err) {
      if (timeout.aborted) {
        const byCaller = signal?.aborted === true;
        throw new ProviderError("timeout", byCaller ? "the request was aborted by the caller" : `no answer within ${conn.timeoutMs} ms`);
      }
      throw new ProviderError("server", `connection error: ${(err as Error).message}`);
    }
    const requestId = res.headers.get("x-request-id") ?? undefined;
    if (!res.ok) throw errorFrom(res, bytes, requestId);

    const type = (res.headers.get("content-type") ?? "image/png").split(";")[0].trim();
    if (type === "application/json") {
      // What Accept: application/json would give; some proxies answer it regardless.
      const body = JSON.parse(new TextDecoder().decode(bytes)) as { image: string; finish_reason?: string };
      return { bytes: fromBase64(body.image), mimeType: "image/png", finish: body.finish_reason, requestId };
    }
    return { bytes, mimeType: type, finish: res.headers.get("finish-reason") ?? undefined, requestId };
  }

  return {
    kind: "stability",

    async image(req, signal): Promise<ImageResult> {
      const endpoint = stabilityEndpoint(req.model);
      if (!endpoint) throw new ProviderError("bad_request", `unknown Stability model "${req.model}" (expected sd3*, *ultra* or *core*)`);
      const images: ImageResult["images"] = [];
      let filtered = false;
      let providerRequestId: string | undefined;
      for (let i = 0; i < Math.max(1, req.n); i++) {
        const one = await generateOne(req, endpoint, signal);
        images.push({ bytes: one.bytes, mimeType: one.mimeType });
        filtered ||= one.finish === "CONTENT_FILTERED";
        providerRequestId ??= one.requestId;
      }
      return { images, filtered, providerRequestId };
    },
  };
}

/**
 * Errors are `{ id, name, errors: [...] }`. 403 is also how Stability says the *prompt* was
 * moderated (name content_moderation, not charged): that one is content_policy, any other 403
 * is auth. The rest by status (see classifyStatus).
 */
function errorFrom(res: Response, bytes: Uint8Array, requestId: string | undefined): ProviderError {
  let body: { id?: string; name?: string; errors?: unknown; message?: string } = {};
  try {
    body = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    // Not JSON (a proxy's HTML page): the status is all we have.
  }
  const errors = Array.isArray(body.errors) ? body.errors.map(String) : [];
  const message = errors.join("; ") || body.message || `HTTP ${res.status}`;
  const cls = res.status === 403 && body.name === "content_moderation" ? "content_policy" : classifyStatus(res.status);
  return new ProviderError(cls, message, {
    status: res.status,
    retryAfterMs: parseRetryAfter(res.headers),
    code: body.name,
    providerRequestId: requestId ?? body.id,
  });
}
