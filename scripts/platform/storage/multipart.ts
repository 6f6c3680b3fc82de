// A streaming multipart/form-data reader for uploads, as the real server reads them with
// @fastify/multipart's `request.file()`: the text fields before the first file part, then that
// file's bytes as a stream (never buffered whole). Anything after the file part is discarded.
import type http from "node:http";
import { PassThrough } from "node:stream";
import { ERRORS } from "./errors.ts";

export interface MultipartFile {
  fieldName: string;
  filename: string;
  contentType: string;
  stream: PassThrough;
}

export interface MultipartUpload {
  fields: Record<string, string>;
  file?: MultipartFile;
  /** Settles when the whole body has been read (or failed). */
  done: Promise<void>;
}

const MAX_HEADER_BYTES = 16 * 1024;
const MAX_FIELD_BYTES = 1024 * 1024;
const CRLF = Buffer.from("\r\n");
const HEADER_END = Buffer.from("\r\n\r\n");

export function multipartBoundary(contentType: string | undefined): string | undefined {
  if (!contentType || !/^multipart\/form-data/i.test(contentType)) return undefined;
  const m = /boundary=(?:"([^"]+)"|([^;]+))/i.exec(contentType);
  return (m?.[1] ?? m?.[2])?.trim();
}

type Event =
  | { kind: "field"; name: string; value: string }
  | { kind: "file"; name: string; filename: string; contentType: string }
  | { kind: "data"; chunk: Buffer }
  | { kind: "fileEnd" }
  | { kind: "end" };

interface PartHeaders {
  name: string;
  filename?: string;
  contentType: string;
}

function parseHeaders(raw: string): PartHeaders {
  let name = "";
  let filename: string | undefined;
  let contentType = "text/plain";
  for (const line of raw.split("\r\n")) {
    const i = line.indexOf(":");
    if (i < 0) continue;
    const key = line.slice(0, i).trim().toLowerCase();
    const value = line.slice(i + 1).trim();
    if (key === "content-disposition") {
      name = /(?:^|;)\s*name="((?:[^"\\]|\\.)*)"/i.exec(value)?.[1] ?? /(?:^|;)\s*name=([^;]*)/i.exec(value)?.[1]?.trim() ?? "";
      const fn = /(?:^|;)\s*filename="((?:[^"\\]|\\.)*)"/i.exec(value)?.[1] ?? /(?:^|;)\s*filename=([^;]*)/i.exec(value)?.[1]?.trim();
      filename = fn?.replace(/\\(.)/g, "$1");
    } else if (key === "content-type") {
      contentType = value;
    }
  }
  return { name, filename, contentType };
}

/**
 * The parsing state machine: feed it chunks, get events. The body is read as if preceded by
 * CRLF, so the first boundary is found like every other `CRLF--boundary` delimiter.
 */
class Parser {
  private buf: Buffer = CRLF;
  private state: "preamble" | "afterDelimiter" | "headers" | "field" | "file" | "epilogue" = "preamble";
  private readonly delimiter: Buffer;
  private part: PartHeaders | undefined;
  private field: Buffer[] = [];
  private fieldBytes = 0;
  private seenFile = false;

  constructor(boundary: string) {
    this.delimiter = Buffer.from(`\r\n--${boundary}`);
  }

  feed(chunk: Buffer): Event[] {
    const events: Event[] = [];
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    for (;;) {
      if (this.state === "epilogue") {
        this.buf = Buffer.alloc(0);
        return events;
      }
      if (this.state === "preamble" || this.state === "field" || this.state === "file") {
        const at = this.buf.indexOf(this.delimiter);
        if (at < 0) {
          // Keep what could be the start of a delimiter split across chunks.
          const keep = Math.min(this.buf.length, this.delimiter.length - 1);
          this.emitBody(this.buf.subarray(0, this.buf.length - keep), events);
          this.buf = this.buf.subarray(this.buf.length - keep);
          return events;
        }
        this.emitBody(this.buf.subarray(0, at), events);
        this.endPart(events);
        this.buf = this.buf.subarray(at + this.delimiter.length);
        this.state = "afterDelimiter";
      }
      if (this.state === "afterDelimiter") {
        if (this.buf.length < 2) return events;
        if (this.buf[0] === 0x2d && this.buf[1] === 0x2d) {
          this.state = "epilogue";
          events.push({ kind: "end" });
          continue;
        }
        // Transport padding, then CRLF, before the part's headers.
        const eol = this.buf.indexOf(CRLF);
        if (eol < 0) {
          if (this.buf.length > 1024) throw ERRORS.InvalidRequest("Malformed multipart body");
          return events;
        }
        this.buf = this.buf.subarray(eol + 2);
        this.state = "headers";
      }
      if (this.state === "headers") {
        // A part without headers starts right away with the blank line.
        const end = this.buf.subarray(0, 2).equals(CRLF) ? -2 : this.buf.indexOf(HEADER_END);
        if (end === -1) {
          if (this.buf.length > MAX_HEADER_BYTES) throw ERRORS.InvalidRequest("Malformed multipart body");
          return events;
        }
        const raw = end === -2 ? "" : this.buf.subarray(0, end).toString("utf8");
        this.buf = this.buf.subarray(end === -2 ? 2 : end + 4);
        this.part = parseHeaders(raw);
        if (this.part.filename !== undefined && !this.seenFile) {
          this.seenFile = true;
          this.state = "file";
          events.push({ kind: "file", name: this.part.name, filename: this.part.filename, contentType: this.part.contentType });
        } else if (this.part.filename !== undefined) {
          // Only the first file counts; later ones are skipped like busboy's unread streams.
          this.state = "field";
          this.part = undefined;
        } else {
          this.state = "field";
          this.field = [];
          this.fieldBytes = 0;
        }
      }
    }
  }

  private emitBody(data: Buffer, events: Event[]): void {
    if (data.length === 0) return;
    if (this.state === "file") {
      // Copy: the parser keeps slicing the same buffer.
      events.push({ kind: "data", chunk: Buffer.from(data) });
    } else if (this.state === "field" && this.part) {
      this.fieldBytes += data.length;
      if (this.fieldBytes > MAX_FIELD_BYTES) throw ERRORS.InvalidRequest("Multipart field too large");
      this.field.push(Buffer.from(data));
    }
  }

  private endPart(events: Event[]): void {
    if (this.state === "file") events.push({ kind: "fileEnd" });
    else if (this.state === "field" && this.part) {
      events.push({ kind: "field", name: this.part.name, value: Buffer.concat(this.field).toString("utf8") });
    }
    this.part = undefined;
  }
}

/** Resolves once the stream wants more, or is gone. */
function drained(stream: PassThrough): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      stream.off("drain", done);
      stream.off("close", done);
      resolve();
    };
    stream.on("drain", done);
    stream.on("close", done);
  });
}

/**
 * Reads the body of `req` until the first file part starts, and resolves with the fields seen
 * so far and the file's stream. The body keeps flowing into that stream (with backpressure).
 */
export function readMultipart(req: http.IncomingMessage, boundary: string): Promise<MultipartUpload> {
  const parser = new Parser(boundary);
  const fields: Record<string, string> = {};
  let file: MultipartFile | undefined;
  let resolveHead!: (u: MultipartUpload) => void;
  let rejectHead!: (err: unknown) => void;
  const head = new Promise<MultipartUpload>((resolve, reject) => {
    resolveHead = resolve;
    rejectHead = reject;
  });
  let announced = false;
  let settle!: { resolve: () => void; reject: (err: unknown) => void };
  const done = new Promise<void>((resolve, reject) => (settle = { resolve, reject }));

  const pump = (async () => {
    let ended = false;
    for await (const chunk of req) {
      for (const ev of parser.feed(chunk as Buffer)) {
        if (ev.kind === "field") {
          if (!file) fields[ev.name] = ev.value;
        } else if (ev.kind === "file") {
          const stream = new PassThrough();
          // Whoever reads the file sees its errors; this keeps an unread one from crashing us.
          stream.on("error", () => {});
          file = { fieldName: ev.name, filename: ev.filename, contentType: ev.contentType, stream };
          announced = true;
          resolveHead({ fields, file, done });
        } else if (ev.kind === "data" && file && !file.stream.destroyed) {
          const stream = file.stream;
          // A reader that gave up (a size limit) destroys the stream; the body is still drained.
          if (!stream.write(ev.chunk)) await drained(stream);
        } else if (ev.kind === "fileEnd") {
          file?.stream.end();
        } else if (ev.kind === "end") {
          ended = true;
        }
      }
    }
    if (!ended) throw ERRORS.InvalidRequest("Unexpected end of multipart data");
  })();

  pump.then(
    () => {
      settle.resolve();
      if (!announced) resolveHead({ fields, file: undefined, done });
    },
    (err) => {
      settle.reject(err);
      if (file && !file.stream.writableEnded) file.stream.destroy(err as Error);
      if (!announced) rejectHead(err);
    },
  );
  // The caller always awaits `done` once it holds it; until then a failure must not go unhandled.
  done.catch(() => {});
  return head;
}
