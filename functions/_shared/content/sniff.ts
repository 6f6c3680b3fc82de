// What a file really is, from its bytes: the type by magic number (file-type), never the name or
// the declared type, and the dimensions or duration read from its headers. A file whose bytes
// disagree with the type it was uploaded as is a lie and is rejected; SVG is text that magic
// numbers cannot vouch for (and can carry scripts), so it is never accepted.
import { fileTypeFromBuffer } from "file-type";

/** Types we accept, each with the declared types that mean the same thing. */
const ACCEPTED: Record<string, string[]> = {
  "image/png": ["image/png"],
  "image/jpeg": ["image/jpeg", "image/jpg", "image/pjpeg"],
  "image/gif": ["image/gif"],
  "image/webp": ["image/webp"],
  "image/avif": ["image/avif"],
  "video/mp4": ["video/mp4"],
  "video/webm": ["video/webm"],
  "video/quicktime": ["video/quicktime"],
  "audio/mpeg": ["audio/mpeg", "audio/mp3"],
  "audio/wav": ["audio/wav", "audio/x-wav", "audio/wave"],
  "audio/ogg": ["audio/ogg"],
  "audio/x-m4a": ["audio/mp4", "audio/x-m4a", "audio/m4a"],
  "application/pdf": ["application/pdf"],
};

export type Verdict =
  | { ok: true; mime: string; width: number | null; height: number | null; durationMs: number | null }
  | { ok: false; reason: string; mime: string | null };

export async function sniff(bytes: Uint8Array, declared: string | null): Promise<Verdict> {
  const head = bytes.subarray(0, 64);
  const text = new TextDecoder().decode(head).trimStart().toLowerCase();
  if (text.startsWith("<svg") || (text.startsWith("<?xml") && new TextDecoder().decode(bytes.subarray(0, 1024)).toLowerCase().includes("<svg"))) {
    return { ok: false, reason: "SVG is not accepted: upload PNG or WebP", mime: "image/svg+xml" };
  }
  const found = await fileTypeFromBuffer(bytes);
  if (!found) return { ok: false, reason: `the file is not a recognizable image, video, audio or PDF (it was declared ${declared ?? "without a type"})`, mime: null };
  const aliases = ACCEPTED[found.mime];
  if (!aliases) return { ok: false, reason: `files of type ${found.mime} are not accepted`, mime: found.mime };
  if (declared && !aliases.includes(declared.toLowerCase())) {
    return { ok: false, reason: `the file is ${found.mime}, not the ${declared} it was uploaded as`, mime: found.mime };
  }
  const size = dimensions(found.mime, bytes);
  return { ok: true, mime: found.mime, width: size?.[0] ?? null, height: size?.[1] ?? null, durationMs: duration(found.mime, bytes) };
}

export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", bytes as BufferSource);
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

// ---------------------------------------------------------------------------- headers

const u16be = (b: Uint8Array, o: number) => (b[o] << 8) | b[o + 1];
const u16le = (b: Uint8Array, o: number) => b[o] | (b[o + 1] << 8);
const u24le = (b: Uint8Array, o: number) => b[o] | (b[o + 1] << 8) | (b[o + 2] << 16);
const u32be = (b: Uint8Array, o: number) => ((b[o] << 24) >>> 0) + ((b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]);
const u32le = (b: Uint8Array, o: number) => (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16)) + ((b[o + 3] << 24) >>> 0);
const ascii = (b: Uint8Array, o: number, n: number) => String.fromCharCode(...b.subarray(o, o + n));

function dimensions(mime: string, b: Uint8Array): [number, number] | null {
  if (mime === "image/png" && b.length >= 24) return [u32be(b, 16), u32be(b, 20)];
  if (mime === "image/gif" && b.length >= 10) return [u16le(b, 6), u16le(b, 8)];
  if (mime === "image/jpeg") return jpegSize(b);
  if (mime === "image/webp") return webpSize(b);
  return null;
}

function jpegSize(b: Uint8Array): [number, number] | null {
  let o = 2;
  while (o + 9 < b.length) {
    if (b[o] !== 0xff) return null;
    const marker = b[o + 1];
    if (marker === 0xd8 || (marker >= 0xd0 && marker <= 0xd7) || marker === 0x01) {
      o += 2;
      continue;
    }
    // Start of frame (baseline, progressive, ...), not DHT (c4), JPG (c8) or DAC (cc).
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) return [u16be(b, o + 7), u16be(b, o + 5)];
    o += 2 + u16be(b, o + 2);
  }
  return null;
}

function webpSize(b: Uint8Array): [number, number] | null {
  if (b.length < 30) return null;
  const chunk = ascii(b, 12, 4);
  if (chunk === "VP8 ") return [u16le(b, 26) & 0x3fff, u16le(b, 28) & 0x3fff];
  if (chunk === "VP8L") {
    const bits = u32le(b, 21);
    return [(bits & 0x3fff) + 1, ((bits >>> 14) & 0x3fff) + 1];
  }
  if (chunk === "VP8X") return [u24le(b, 24) + 1, u24le(b, 27) + 1];
  return null;
}

function duration(mime: string, b: Uint8Array): number | null {
  if (mime === "video/mp4" || mime === "video/quicktime" || mime === "audio/x-m4a") return mp4Duration(b);
  if (mime === "audio/wav") return wavDuration(b);
  return null;
}

/** moov/mvhd: duration / timescale. */
function mp4Duration(b: Uint8Array): number | null {
  const walk = (start: number, end: number): number | null => {
    let o = start;
    while (o + 8 <= end) {
      let size = u32be(b, o);
      const type = ascii(b, o + 4, 4);
      let header = 8;
      if (size === 1 && o + 16 <= end) {
        size = Number((BigInt(u32be(b, o + 8)) << 32n) + BigInt(u32be(b, o + 12)));
        header = 16;
      } else if (size === 0) size = end - o;
      if (size < header || o + size > end) return null;
      if (type === "moov") return walk(o + header, o + size);
      if (type === "mvhd") {
        const v = b[o + header];
        const base = o + header + 4;
        const [scale, dur] = v === 1
          ? [u32be(b, base + 16), Number((BigInt(u32be(b, base + 20)) << 32n) + BigInt(u32be(b, base + 24)))]
          : [u32be(b, base + 8), u32be(b, base + 12)];
        return scale > 0 ? Math.round((dur / scale) * 1000) : null;
      }
      o += size;
    }
    return null;
  };
  return walk(0, b.length);
}

/** fmt's byte rate and the data chunk's size. */
function wavDuration(b: Uint8Array): number | null {
  let o = 12;
  let byteRate = 0;
  while (o + 8 <= b.length) {
    const id = ascii(b, o, 4);
    const size = u32le(b, o + 4);
    if (id === "fmt " && o + 16 <= b.length) byteRate = u32le(b, o + 16);
    if (id === "data") return byteRate > 0 ? Math.round((size / byteRate) * 1000) : null;
    o += 8 + size + (size % 2);
  }
  return null;
}
