// The keyless local provider: deterministic output for every modality, and media files that
// really decode (PNG chunks and pixels, WAV header and length, MP4 box).
import { describe, expect, it } from "vitest";
import { randomUUID } from "node:crypto";
import { inflateSync } from "node:zlib";
import { createLocalAdapter, tokens } from "../../functions/_shared/ai/providers/local.ts";
import { crc32 } from "../../functions/_shared/ai/providers/local-media.ts";
import { type ChatRequest, type ChatStreamEvent, type ProviderConnection, ProviderError } from "../../functions/_shared/ai/types.ts";
import { drain, rejection } from "../helpers/fake-ai.ts";

const conn: ProviderConnection = { id: "local", kind: "local", baseUrl: null, apiKey: "", timeoutMs: 1_000 };
const local = createLocalAdapter(conn);
const chatReq = (content: string, extra: Partial<ChatRequest> = {}): ChatRequest => ({
  model: "local-chat",
  messages: [
    { role: "system", content: "Be brief." },
    { role: "user", content },
  ],
  maxTokens: 200,
  ...extra,
});

/** Reads a PNG's chunks, checking every CRC; returns IHDR fields and the inflated pixel data. */
function decodePng(bytes: Uint8Array) {
  expect([...bytes.subarray(0, 8)]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const chunks: { type: string; data: Uint8Array }[] = [];
  for (let off = 8; off < bytes.length;) {
    const len = v.getUint32(off);
    const type = new TextDecoder().decode(bytes.subarray(off + 4, off + 8));
    const data = bytes.subarray(off + 8, off + 8 + len);
    expect(v.getUint32(off + 8 + len)).toBe(crc32(bytes.subarray(off + 4, off + 8 + len)));
    chunks.push({ type, data });
    off += 12 + len;
  }
  expect(chunks.map((c) => c.type)).toEqual(["IHDR", "IDAT", "IEND"]);
  const ihdr = new DataView(chunks[0].data.buffer, chunks[0].data.byteOffset, 13);
  const width = ihdr.getUint32(0);
  const height = ihdr.getUint32(4);
  const pixels = new Uint8Array(inflateSync(chunks[1].data));
  expect(pixels.length).toBe(height * (width * 3 + 1));
  return { width, height, bitDepth: ihdr.getUint8(8), colorType: ihdr.getUint8(9), pixels };
}

describe("chat", () => {
  it("is deterministic, echoes the prompt's key words and counts tokens by bytes", async () => {
    const req = chatReq("Please summarize quarterly revenue growth for the marketing team");
    const a = await local.chat!(req);
    const b = await local.chat!(req);
    expect(b).toEqual(a);
    expect(a.text).toMatch(/summarize, quarterly, revenue, growth, marketing, team/);
    expect(a.finishReason).toBe("stop");
    expect(a.usage).toEqual({ inputTokens: tokens("Be brief.") + tokens("Please summarize quarterly revenue growth for the marketing team"), outputTokens: tokens(a.text) });
    expect(a.usage.inputTokens).toBe(3 + 16);
    expect(a.providerRequestId).toMatch(/^local-[0-9a-f]{16}$/);
    const other = await local.chat!(chatReq("Describe the lighthouse keeper"));
    expect(other.text).not.toBe(a.text);
    expect(other.providerRequestId).not.toBe(a.providerRequestId);
  });

  it("stops at maxTokens with finish reason length", async () => {
    const out = await local.chat!(chatReq("Explain photosynthesis chlorophyll sunlight glucose oxygen", { maxTokens: 3 }));
    expect(out.usage.outputTokens).toBeLessThanOrEqual(3);
    expect(new TextEncoder().encode(out.text).length).toBeLessThanOrEqual(12);
    expect(out.finishReason).toBe("length");
  });

  it("answers valid JSON in JSON mode, even when maxTokens is tight", async () => {
    const full = await local.chat!(chatReq("List cities: Paris Berlin Madrid", { responseFormat: "json" }));
    expect(JSON.parse(full.text)).toMatchObject({ keywords: ["list", "cities", "paris", "berlin", "madrid"] });
    expect(full.finishReason).toBe("stop");
    for (const maxTokens of [1, 5, 12]) {
      const tight = await local.chat!(chatReq("List cities: Paris Berlin Madrid", { responseFormat: "json", maxTokens }));
      expect(() => JSON.parse(tight.text)).not.toThrow();
      expect(tight.usage.outputTokens).toBeLessThanOrEqual(maxTokens);
      expect(tight.finishReason).toBe("length");
    }
  });

  it("streams the same text in a few deltas, with start, usage and done", async () => {
    const req = chatReq("Streaming keywords: river mountain forest valley");
    const whole = await local.chat!(req);
    const { events, error } = await drain(local.chatStream!(req));
    expect(error).toBeUndefined();
    expect(events[0]).toEqual({ type: "start", providerRequestId: whole.providerRequestId, inputTokens: whole.usage.inputTokens, providerModel: "local-chat" });
    const deltas = events.filter((e): e is Extract<ChatStreamEvent, { type: "delta" }> => e.type === "delta");
    expect(deltas.length).toBeGreaterThanOrEqual(2);
    expect(deltas.map((d) => d.text).join("")).toBe(whole.text);
    expect(events.at(-1)).toEqual({ type: "done", finishReason: "stop", usage: whole.usage });
  });

  it("a stream whose caller aborted ends without done", async () => {
    const ctrl = new AbortController();
    ctrl.abort();
    const { events } = await drain(local.chatStream!(chatReq("anything at all here"), ctrl.signal));
    expect(events.map((e) => e.type)).toEqual(["start"]);
  });
});

describe("images", () => {
  it("makes a valid PNG at the requested size, coloured by the prompt, same bytes for the same prompt", async () => {
    const req = { model: "local-image", prompt: "a red fox in snow", n: 1, size: "256x128" };
    const a = await local.image!(req);
    const b = await local.image!(req);
    expect(a.images[0].bytes).toEqual(b.images[0].bytes);
    expect(a.images[0].mimeType).toBe("image/png");
    const png = decodePng(a.images[0].bytes!);
    expect(png).toMatchObject({ width: 256, height: 128, bitDepth: 8, colorType: 2 });
    const other = await local.image!({ ...req, prompt: "a blue whale" });
    expect(decodePng(other.images[0].bytes!).pixels).not.toEqual(png.pixels);
  });

  it("caps the size at 512 px keeping the aspect ratio, and makes n different images", async () => {
    const out = await local.image!({ model: "local-image", prompt: "wide", n: 2, size: "1792x1024" });
    expect(out.images).toHaveLength(2);
    const first = decodePng(out.images[0].bytes!);
    expect([first.width, first.height]).toEqual([512, 293]);
    expect(out.images[0].bytes).not.toEqual(out.images[1].bytes);
    const auto = decodePng((await local.image!({ model: "local-image", prompt: "x", n: 1, size: "auto" })).images[0].bytes!);
    expect([auto.width, auto.height]).toEqual([512, 512]);
  });
});

describe("embeddings", () => {
  const cosine = (a: number[], b: number[]) => a.reduce((s, x, i) => s + x * b[i], 0);

  it("gives deterministic unit vectors, 256 dimensions by default", async () => {
    const out = await local.embed!({ model: "local-embed", input: ["the cat sat on the mat", "the cat sat on the mat"] });
    expect(out.vectors).toHaveLength(2);
    expect(out.vectors[0]).toHaveLength(256);
    expect(out.vectors[0]).toEqual(out.vectors[1]);
    expect(cosine(out.vectors[0], out.vectors[0])).toBeCloseTo(1, 10);
    expect(out.usage.inputTokens).toBe(2 * tokens("the cat sat on the mat"));
    const again = await local.embed!({ model: "local-embed", input: ["the cat sat on the mat"] });
    expect(again.vectors[0]).toEqual(out.vectors[0]);
  });

  it("honours dimensions, and texts that share words are closer", async () => {
    const out = await local.embed!({ model: "local-embed", input: ["red apple pie recipe", "apple pie recipe with cinnamon", "quantum chromodynamics lecture"], dimensions: 64 });
    expect(out.vectors.every((v) => v.length === 64)).toBe(true);
    expect(cosine(out.vectors[0], out.vectors[1])).toBeGreaterThan(cosine(out.vectors[0], out.vectors[2]) + 0.3);
  });
});

describe("moderation", () => {
  it("flags inputs with the marker word, in the named category", async () => {
    const out = await local.moderate!({ model: "local-mod", input: ["hello there", "FLAGME now", "FLAGME:hate please", "flagme lower case"] });
    expect(out.results.map((r) => r.flagged)).toEqual([false, true, true, false]);
    expect(out.results[1].categories.violence).toBe(true);
    expect(out.results[2].categories.hate).toBe(true);
    expect(out.results[2].categories.violence).toBe(false);
    expect(out.results[2].scores.hate).toBeCloseTo(0.99);
    expect(Object.keys(out.results[0].categories)).toContain("self-harm/intent");
  });

  it("takes another marker word", async () => {
    const custom = createLocalAdapter(conn, { flagWord: "BLOCK.ME" });
    const out = await custom.moderate!({ model: "local-mod", input: ["BLOCK.ME", "FLAGME", "BLOCKxME"] });
    expect(out.results.map((r) => r.flagged)).toEqual([true, false, false]);
  });
});

describe("speech", () => {
  function readWav(bytes: Uint8Array) {
    const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const ascii = (off: number) => new TextDecoder().decode(bytes.subarray(off, off + 4));
    expect([ascii(0), ascii(8), ascii(12), ascii(36)]).toEqual(["RIFF", "WAVE", "fmt ", "data"]);
    expect(v.getUint32(4, true)).toBe(bytes.length - 8);
    expect(v.getUint16(20, true)).toBe(1); // PCM
    const byteRate = v.getUint32(28, true);
    const dataSize = v.getUint32(40, true);
    expect(dataSize).toBe(bytes.length - 44);
    return dataSize / byteRate;
  }

  it("makes a WAV as long as reading the text takes, the same for the same text", async () => {
    const short = await local.speech!({ model: "local-tts", text: "Hello there, friend.", voice: "alloy" });
    const long = await local.speech!({ model: "local-tts", text: "Hello there, friend. ".repeat(10), voice: "alloy" });
    expect(short.file.mimeType).toBe("audio/wav");
    expect(readWav(short.file.bytes!)).toBeCloseTo(short.seconds!, 3);
    expect(readWav(long.file.bytes!)).toBeCloseTo(long.seconds!, 3);
    expect(short.characters).toBe(20);
    expect(short.seconds).toBeCloseTo(20 / 15, 2);
    expect(long.seconds).toBeCloseTo(210 / 15, 2);
    const again = await local.speech!({ model: "local-tts", text: "Hello there, friend.", voice: "alloy" });
    expect(again.file.bytes).toEqual(short.file.bytes);
    // Not silence: the tone moves the samples away from the 8-bit midpoint.
    expect(short.file.bytes!.subarray(44).some((s) => Math.abs(s - 128) > 10)).toBe(true);
  });
});

describe("video tasks", () => {
  it("submit → queued, get → running, get → succeeded with an MP4 and the requested duration", async () => {
    const idem = `job-${randomUUID()}`;
    const submitted = await local.submit!({ model: "local-video", input: { prompt: "a sunrise", duration_seconds: 7 }, idempotencyKey: idem });
    expect(submitted.status).toBe("queued");
    expect(submitted.providerTaskId).toMatch(/^local-task-/);
    const running = await local.get!(submitted.providerTaskId);
    expect(running).toMatchObject({ status: "running", progress: 0.5 });
    expect(running.outputs).toBeUndefined();
    const done = await local.get!(submitted.providerTaskId);
    expect(done).toMatchObject({ status: "succeeded", progress: 1, durationSeconds: 7 });
    const mp4 = done.outputs![0];
    expect(mp4.mimeType).toBe("video/mp4");
    expect(new TextDecoder().decode(mp4.bytes!.subarray(4, 8))).toBe("ftyp");
    expect(mp4.bytes!.length).toBeLessThan(8_000);
    // Another adapter instance sees the same task (module state), by id and by our key.
    const again = createLocalAdapter(conn);
    expect((await again.findByIdempotencyKey!(idem))?.providerTaskId).toBe(submitted.providerTaskId);
    expect((await again.submit!({ model: "local-video", input: {}, idempotencyKey: idem })).providerTaskId).toBe(submitted.providerTaskId);
  });

  it("finds nothing for an unknown key; get of an unknown task is not_found", async () => {
    expect(await local.findByIdempotencyKey!(`never-${randomUUID()}`)).toBeNull();
    const err = await rejection(local.get!("local-task-nope"));
    expect(err).toBeInstanceOf(ProviderError);
    expect((err as ProviderError).errorClass).toBe("not_found");
  });

  it("a talking photo lasts as long as its script; cancel and delete work", async () => {
    const idem = `job-${randomUUID()}`;
    const t = await local.submit!({ model: "local-talk", input: { image_url: "http://x/p.png", script: { text: "x".repeat(45), voice: "a" } }, idempotencyKey: idem });
    await local.cancel!(t.providerTaskId);
    expect((await local.get!(t.providerTaskId)).status).toBe("canceled");
    await local.delete!(t.providerTaskId);
    expect(await local.findByIdempotencyKey!(idem)).toBeNull();

    const t2 = await local.submit!({ model: "local-talk", input: { script: { text: "y".repeat(45) } }, idempotencyKey: `job-${randomUUID()}` });
    await local.get!(t2.providerTaskId);
    expect((await local.get!(t2.providerTaskId)).durationSeconds).toBe(3);
  });
});
