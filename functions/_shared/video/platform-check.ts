// Every way a finished video breaks a platform's spec (a video.platform_specs row), from the
// file's real metadata (mp4.ts). Pure: the api and the bench call it the same way.
import type { Mp4Metadata } from "./mp4.ts";

export interface PlatformSpec {
  id: string;
  platform: string;
  version: number;
  containers: string[];
  video_codecs: string[];
  audio_codecs: string[];
  min_seconds: number | null;
  max_seconds: number | null;
  min_width: number | null;
  min_height: number | null;
  max_width: number | null;
  max_height: number | null;
  aspect_ratios: string[] | null;
  min_aspect: number | null;
  max_aspect: number | null;
  min_fps: number | null;
  max_fps: number | null;
  max_bytes: number | null;
  requires_faststart: boolean;
}

export interface Violation {
  rule: "container" | "video_codec" | "audio_codec" | "duration" | "width" | "height" | "aspect_ratio" | "fps" | "size" | "faststart";
  message: string;
  expected: unknown;
  actual: unknown;
}

/** How far (relative) a frame may be from a listed aspect ratio and still count as it. */
export const ASPECT_TOLERANCE = 0.02;

const num = (v: number | string | null) => (v === null ? null : Number(v));
const ratio = (r: string) => {
  const [w, h] = r.split(":").map(Number);
  return w / h;
};

export function checkAgainstSpec(m: Mp4Metadata, spec: PlatformSpec): Violation[] {
  const out: Violation[] = [];
  const add = (rule: Violation["rule"], message: string, expected: unknown, actual: unknown) => out.push({ rule, message, expected, actual });
  if (!spec.containers.includes(m.container)) add("container", `the file is ${m.container}; ${spec.platform} takes ${spec.containers.join(", ")}`, spec.containers, m.container);
  if (!m.video_codec || !spec.video_codecs.includes(m.video_codec)) {
    add("video_codec", `the video is ${m.video_codec ?? "missing"}; ${spec.platform} takes ${spec.video_codecs.join(", ")}`, spec.video_codecs, m.video_codec);
  }
  if (m.audio_codec && !spec.audio_codecs.includes(m.audio_codec)) {
    add("audio_codec", `the sound is ${m.audio_codec}; ${spec.platform} takes ${spec.audio_codecs.join(", ")}`, spec.audio_codecs, m.audio_codec);
  }
  const [minS, maxS] = [num(spec.min_seconds), num(spec.max_seconds)];
  if ((minS !== null && m.seconds < minS) || (maxS !== null && m.seconds > maxS)) {
    add("duration", `the video lasts ${round(m.seconds)} s; ${spec.platform} takes ${range(minS, maxS, "s")}`, { min: minS, max: maxS }, round(m.seconds));
  }
  if (m.width !== null && ((spec.min_width !== null && m.width < spec.min_width) || (spec.max_width !== null && m.width > spec.max_width))) {
    add("width", `the video is ${m.width} px wide; ${spec.platform} takes ${range(spec.min_width, spec.max_width, "px")}`, { min: spec.min_width, max: spec.max_width }, m.width);
  }
  if (m.height !== null && ((spec.min_height !== null && m.height < spec.min_height) || (spec.max_height !== null && m.height > spec.max_height))) {
    add("height", `the video is ${m.height} px high; ${spec.platform} takes ${range(spec.min_height, spec.max_height, "px")}`, { min: spec.min_height, max: spec.max_height }, m.height);
  }
  if (m.width && m.height) {
    const actual = m.width / m.height;
    const shown = `${m.width}:${m.height}`;
    if (spec.aspect_ratios?.length && !spec.aspect_ratios.some((r) => Math.abs(actual / ratio(r) - 1) <= ASPECT_TOLERANCE)) {
      add("aspect_ratio", `the frame is ${shown}; ${spec.platform} takes ${spec.aspect_ratios.join(" or ")}`, spec.aspect_ratios, shown);
    }
    const [lo, hi] = [num(spec.min_aspect), num(spec.max_aspect)];
    if ((lo !== null && actual < lo * (1 - ASPECT_TOLERANCE)) || (hi !== null && actual > hi * (1 + ASPECT_TOLERANCE))) {
      add("aspect_ratio", `the frame is ${shown}; ${spec.platform} takes width/height from ${lo ?? 0} to ${hi ?? "any"}`, { min: lo, max: hi }, shown);
    }
  }
  const [minF, maxF] = [num(spec.min_fps), num(spec.max_fps)];
  if (m.fps !== null && ((minF !== null && m.fps < minF) || (maxF !== null && m.fps > maxF))) {
    add("fps", `the video runs at ${round(m.fps)} fps; ${spec.platform} takes ${range(minF, maxF, "fps")}`, { min: minF, max: maxF }, round(m.fps));
  }
  if (spec.max_bytes !== null && m.bytes > Number(spec.max_bytes)) {
    add("size", `the file is ${m.bytes} bytes; ${spec.platform} takes at most ${spec.max_bytes}`, Number(spec.max_bytes), m.bytes);
  }
  if (spec.requires_faststart && !m.faststart) {
    add("faststart", `${spec.platform} needs the moov box at the front (fast start); re-mux with -movflags +faststart`, true, false);
  }
  return out;
}

const round = (n: number) => Math.round(n * 100) / 100;

function range(min: number | null, max: number | null, unit: string): string {
  if (min !== null && max !== null) return `${min} to ${max} ${unit}`;
  if (min !== null) return `at least ${min} ${unit}`;
  return `at most ${max} ${unit}`;
}
