// What a finished video really is, read from its MP4 boxes: the top-level boxes are walked by
// reading their 8- or 16-byte headers (byte ranges), only ftyp and moov are fetched whole, and
// mp4box (GPAC's parser) reads them; the media data is never downloaded, so checking a 1 GB
// file costs the same few reads as a 1 MB one.
import { createFile, MP4BoxBuffer } from "mp4box";

export interface Mp4Metadata {
  container: "mp4" | "mov" | "unknown";
  video_codec: string | null;
  audio_codec: string | null;
  seconds: number;
  width: number | null;
  height: number | null;
  fps: number | null;
  bytes: number;
  /** moov comes before mdat (playback can start before the whole file arrives). */
  faststart: boolean;
  brands: string[];
}

/** The largest moov we read (a moov of hours of video is a few MB). */
const MAX_MOOV_BYTES = 32 * 1024 * 1024;
const MAX_TOP_BOXES = 64;

export type RangeRead = (start: number, end: number) => Promise<Uint8Array>;

const u32 = (b: Uint8Array, o: number) => ((b[o] << 24) >>> 0) + ((b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]);
const ascii = (b: Uint8Array, o: number, n: number) => String.fromCharCode(...b.subarray(o, o + n));

const CODECS: Record<string, string> = {
  avc1: "h264", avc3: "h264", hvc1: "hevc", hev1: "hevc", vp08: "vp8", vp09: "vp9", av01: "av1",
  mp4a: "aac", Opus: "opus", opus: "opus", ".mp3": "mp3",
};

function codecName(codec: string | undefined): string | null {
  if (!codec) return null;
  const fourcc = codec.split(".")[0];
  // MPEG-1/2 audio in an mp4a entry (object type 0x69 / 0x6B) is MP3.
  if (fourcc === "mp4a" && /^mp4a\.(69|6b)/i.test(codec)) return "mp3";
  return CODECS[fourcc] ?? fourcc;
}

export class NotMp4Error extends Error {}

export async function probeMp4(size: number, read: RangeRead): Promise<Mp4Metadata> {
  const boxes: { type: string; start: number; size: number }[] = [];
  for (let pos = 0; pos < size && boxes.length < MAX_TOP_BOXES;) {
    const h = await read(pos, Math.min(size, pos + 16));
    if (h.length < 8) break;
    let len = u32(h, 0);
    const type = ascii(h, 4, 4);
    if (len === 1) len = h.length >= 16 ? u32(h, 8) * 2 ** 32 + u32(h, 12) : 0;
    else if (len === 0) len = size - pos;
    if (len < 8 || !/^[\x20-\x7e]{4}$/.test(type)) break;
    boxes.push({ type, start: pos, size: len });
    pos += len;
  }
  const ftyp = boxes.find((b) => b.type === "ftyp");
  const moov = boxes.find((b) => b.type === "moov");
  if (!ftyp || !moov) throw new NotMp4Error(ftyp ? "the file has no moov box (not a finished MP4)" : "the file is not an MP4 or MOV file");
  if (moov.size > MAX_MOOV_BYTES) throw new NotMp4Error("the file's moov box is larger than 32 MB");
  // ftyp and moov side by side are a complete movie header for the parser (sample offsets point
  // into mdat, which is never read).
  const head = new Uint8Array(ftyp.size + moov.size);
  head.set(await read(ftyp.start, ftyp.start + ftyp.size), 0);
  head.set(await read(moov.start, moov.start + moov.size), ftyp.size);
  const file = createFile();
  let info: Parameters<NonNullable<typeof file.onReady>>[0] | undefined;
  let failure: string | undefined;
  file.onReady = (i) => (info = i);
  file.onError = (module: string, message: string) => (failure = `${module}: ${message}`);
  file.appendBuffer(MP4BoxBuffer.fromArrayBuffer(head.buffer as ArrayBuffer, 0));
  file.flush();
  if (!info) throw new NotMp4Error(`the MP4 boxes could not be read${failure ? ` (${failure})` : ""}`);
  const video = info.videoTracks[0];
  const audio = info.audioTracks[0];
  const mdat = boxes.find((b) => b.type === "mdat");
  const trackSeconds = video ? (video.samples_duration || video.duration) / video.timescale : 0;
  const major = ascii(head, 8, 4);
  return {
    container: major === "qt  " ? "mov" : "mp4",
    video_codec: codecName(video?.codec),
    audio_codec: codecName(audio?.codec),
    seconds: info.timescale ? info.duration / info.timescale : trackSeconds,
    width: video ? (video.video?.width ?? video.track_width) : null,
    height: video ? (video.video?.height ?? video.track_height) : null,
    fps: video && trackSeconds > 0 ? Math.round((video.nb_samples / trackSeconds) * 1000) / 1000 : null,
    bytes: size,
    faststart: !mdat || moov.start < mdat.start,
    brands: [...new Set(info.brands)],
  };
}
