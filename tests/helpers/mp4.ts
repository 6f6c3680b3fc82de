// MP4 files crafted box by box for the export validator's tests and bench: ftyp, a moov with
// one H.264 video track (complete sample tables), and an mdat of zeros of any size, with the moov
// before or after the media data. No vitest imports, so the bench can use it.
const enc = (s: string) => new TextEncoder().encode(s);
function u32(n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n);
  return b;
}
const u16 = (n: number) => new Uint8Array([n >> 8, n & 0xff]);
function cat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
const box = (type: string, ...body: Uint8Array[]) => {
  const payload = cat(...body);
  return cat(u32(8 + payload.length), enc(type), payload);
};
const full = (type: string, version: number, flags: number, ...body: Uint8Array[]) => box(type, new Uint8Array([version, flags >> 16, (flags >> 8) & 0xff, flags & 0xff]), ...body);
const zeros = (n: number) => new Uint8Array(n);
const MATRIX = cat(u32(0x10000), u32(0), u32(0), u32(0), u32(0x10000), u32(0), u32(0), u32(0), u32(0x40000000));

export interface Mp4Spec {
  width: number;
  height: number;
  seconds: number;
  fps: number;
  /** Major brand: "isom" (MP4) or "qt  " (MOV). */
  brand?: string;
  /** moov before mdat (fast start); default true. */
  moovFirst?: boolean;
  /** Media data size (zeros); default 1 KB. */
  mdatBytes?: number;
}

/** An H.264 MP4 of this size, length and frame rate: ftyp, moov (one video track, full sample tables) and mdat. */
export function craftMp4(s: Mp4Spec): Uint8Array {
  const samples = Math.max(1, Math.round(s.seconds * s.fps));
  const timescale = Math.round(s.fps * 1000);
  const sampleSize = Math.max(1, Math.floor((s.mdatBytes ?? 1024) / samples));
  const brand = s.brand ?? "isom";
  const ftyp = box("ftyp", enc(brand), u32(0x200), enc(brand), enc("iso2"), enc("avc1"), enc("mp41"));
  const moovWith = (chunkOffset: number) => {
    const avcC = box("avcC", new Uint8Array([1, 0x64, 0, 0x1f, 0xff, 0xe0, 0]));
    const avc1 = box("avc1", zeros(6), u16(1), zeros(16), u16(s.width), u16(s.height), u32(0x480000), u32(0x480000), u32(0), u16(1), zeros(32), u16(0x18), u16(0xffff), avcC);
    const stbl = box("stbl",
      full("stsd", 0, 0, u32(1), avc1),
      full("stts", 0, 0, u32(1), u32(samples), u32(1000)),
      full("stss", 0, 0, u32(1), u32(1)),
      full("stsc", 0, 0, u32(1), u32(1), u32(samples), u32(1)),
      full("stsz", 0, 0, u32(sampleSize), u32(samples)),
      full("stco", 0, 0, u32(1), u32(chunkOffset)));
    const minf = box("minf", full("vmhd", 0, 1, zeros(8)), box("dinf", full("dref", 0, 0, u32(1), full("url ", 0, 1))), stbl);
    const mdia = box("mdia",
      full("mdhd", 0, 0, u32(0), u32(0), u32(timescale), u32(samples * 1000), u16(0x55c4), u16(0)),
      full("hdlr", 0, 0, u32(0), enc("vide"), zeros(12), enc("VideoHandler\0")),
      minf);
    const ms = Math.round(s.seconds * 1000);
    const tkhd = full("tkhd", 0, 3, u32(0), u32(0), u32(1), u32(0), u32(ms), zeros(8), u16(0), u16(0), u16(0), u16(0), MATRIX, u32(s.width << 16), u32(s.height << 16));
    const mvhd = full("mvhd", 0, 0, u32(0), u32(0), u32(1000), u32(ms), u32(0x10000), u16(0x100), zeros(10), MATRIX, zeros(24), u32(2));
    return box("moov", mvhd, box("trak", tkhd, mdia));
  };
  const mdatHeader = u32(8 + samples * sampleSize);
  const moovSize = moovWith(0).length;
  const moovFirst = s.moovFirst ?? true;
  const dataStart = moovFirst ? ftyp.length + moovSize + 8 : ftyp.length + 8;
  const moov = moovWith(dataStart);
  const out = new Uint8Array(ftyp.length + moov.length + 8 + samples * sampleSize);
  out.set(ftyp, 0);
  if (moovFirst) {
    out.set(moov, ftyp.length);
    out.set(mdatHeader, ftyp.length + moov.length);
    out.set(enc("mdat"), ftyp.length + moov.length + 4);
  } else {
    out.set(mdatHeader, ftyp.length);
    out.set(enc("mdat"), ftyp.length + 4);
    out.set(moov, out.length - moov.length);
  }
  return out;
}
