// The rules an upload must pass before anything is paid for, as pure functions of what its bytes
// are (content/sniff.ts reads type, pixels and length from the headers). Photos follow what
// talking-photo providers accept (Alibaba's liveportrait/emo detectors: JPEG, PNG or WebP under
// 10 MB, short side at least 400 px, long side at most 4096, aspect at most 2); voice tracks must
// have a length the header states, within the longest tier.

export const PHOTO_RULES = {
  types: ["image/jpeg", "image/png", "image/webp"],
  maxBytes: 10 * 1024 * 1024,
  minShortSide: 400,
  maxLongSide: 4096,
  maxAspect: 2,
} as const;

export const AUDIO_RULES = {
  types: ["audio/wav", "audio/mpeg", "audio/x-m4a"],
  maxBytes: 20 * 1024 * 1024,
  maxSeconds: 300,
} as const;

export type RejectCode = "format" | "size" | "too_small" | "too_large" | "aspect_ratio" | "no_face" | "face_refused" | "face_check_unavailable" | "audio_length" | "missing";

export type Verdict = { ok: true; kind: "photo" | "audio" } | { ok: false; code: RejectCode; reason: string };

export interface Sniffed {
  mime: string | null;
  bytes: number;
  width: number | null;
  height: number | null;
  durationMs: number | null;
}

const mb = (n: number) => `${Math.round((n / 1024 / 1024) * 10) / 10} MB`;

/** The verdict on a file whose type the magic bytes showed (null: not one we know). */
export function checkUpload(f: Sniffed): Verdict {
  if (f.mime && (AUDIO_RULES.types as readonly string[]).includes(f.mime)) return checkAudio(f);
  if (!f.mime || !(PHOTO_RULES.types as readonly string[]).includes(f.mime)) {
    return { ok: false, code: "format", reason: `the file is ${f.mime ?? "of no type we recognize"}; upload a JPEG, PNG or WebP photo (or a WAV, MP3 or M4A voice track)` };
  }
  if (f.bytes > PHOTO_RULES.maxBytes) {
    return { ok: false, code: "size", reason: `the photo is ${mb(f.bytes)}; photos may be at most ${mb(PHOTO_RULES.maxBytes)}` };
  }
  if (!f.width || !f.height) return { ok: false, code: "format", reason: "the photo's header does not state its size in pixels" };
  const short = Math.min(f.width, f.height);
  const long = Math.max(f.width, f.height);
  if (short < PHOTO_RULES.minShortSide) {
    return { ok: false, code: "too_small", reason: `the photo is ${f.width}x${f.height}; its shorter side must be at least ${PHOTO_RULES.minShortSide} px` };
  }
  if (long > PHOTO_RULES.maxLongSide) {
    return { ok: false, code: "too_large", reason: `the photo is ${f.width}x${f.height}; its longer side may be at most ${PHOTO_RULES.maxLongSide} px` };
  }
  if (long / short > PHOTO_RULES.maxAspect) {
    return { ok: false, code: "aspect_ratio", reason: `the photo is ${f.width}x${f.height}; crop it so the longer side is at most ${PHOTO_RULES.maxAspect} times the shorter` };
  }
  return { ok: true, kind: "photo" };
}

function checkAudio(f: Sniffed): Verdict {
  if (f.bytes > AUDIO_RULES.maxBytes) return { ok: false, code: "size", reason: `the voice track is ${mb(f.bytes)}; at most ${mb(AUDIO_RULES.maxBytes)}` };
  if (!f.durationMs || f.durationMs <= 0) {
    return { ok: false, code: "audio_length", reason: "the voice track's header does not state its length; upload WAV, MP3 (constant bit rate) or M4A" };
  }
  if (f.durationMs > AUDIO_RULES.maxSeconds * 1000) {
    return { ok: false, code: "audio_length", reason: `the voice track lasts ${Math.round(f.durationMs / 1000)} s; at most ${AUDIO_RULES.maxSeconds} s` };
  }
  return { ok: true, kind: "audio" };
}

/**
 * An MP3's length from its first frame header (MPEG-1/2 Layer III at a constant bit rate: the
 * file's size over the bit rate); content/sniff.ts reads lengths of WAV and M4A only.
 */
export function mp3DurationMs(b: Uint8Array): number | null {
  let o = 0;
  if (b[0] === 0x49 && b[1] === 0x44 && b[2] === 0x33 && b.length > 10) {
    // ID3v2: a syncsafe size after a 10-byte header.
    o = 10 + ((b[6] & 0x7f) << 21 | (b[7] & 0x7f) << 14 | (b[8] & 0x7f) << 7 | (b[9] & 0x7f));
  }
  for (; o + 4 <= b.length && o < 64 * 1024; o++) {
    if (b[o] !== 0xff || (b[o + 1] & 0xe6) !== 0xe2) continue; // frame sync, layer III
    const mpeg1 = (b[o + 1] & 0x18) === 0x18;
    const idx = b[o + 2] >> 4;
    const kbps = (mpeg1 ? [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320] : [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160])[idx];
    if (!kbps) continue;
    return Math.round(((b.length - o) * 8) / kbps);
  }
  return null;
}
