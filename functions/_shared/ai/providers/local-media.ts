// Tiny valid media files for the keyless local provider: a PNG encoder (zlib from node:zlib,
// which Deno also provides), a PCM WAV writer, and a committed 1-second MP4. Nothing here
// needs ffmpeg or a network at run time.
import { deflateSync } from "node:zlib";

// ---------------------------------------------------------------------------- PNG

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

export function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const v = new DataView(out.buffer);
  v.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  v.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

export type Rgb = [number, number, number];

/**
 * An 8-bit RGB PNG of two diagonal bands in colours a and b (so the picture is not a flat
 * swatch, yet compresses to a few hundred bytes).
 */
export function encodePng(width: number, height: number, a: Rgb, b: Rgb): Uint8Array {
  const stride = width * 3 + 1;
  const raw = new Uint8Array(stride * height);
  const band = Math.max(4, Math.round(Math.min(width, height) / 8));
  for (let y = 0; y < height; y++) {
    raw[y * stride] = 0; // filter: none
    for (let x = 0; x < width; x++) {
      const c = Math.floor((x + y) / band) % 2 === 0 ? a : b;
      raw.set(c, y * stride + 1 + x * 3);
    }
  }
  const ihdr = new Uint8Array(13);
  const v = new DataView(ihdr.buffer);
  v.setUint32(0, width);
  v.setUint32(4, height);
  ihdr.set([8, 2, 0, 0, 0], 8); // bit depth 8, colour type RGB, deflate, adaptive filter, no interlace
  const parts = [
    new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", new Uint8Array(deflateSync(raw))),
    chunk("IEND", new Uint8Array(0)),
  ];
  return concat(parts);
}

// ---------------------------------------------------------------------------- WAV

export const WAV_SAMPLE_RATE = 8000;

/** 8-bit mono PCM: a quiet tone of `hz` for `seconds`, fading in and out so it does not click. */
export function encodeWav(seconds: number, hz: number): Uint8Array {
  const samples = Math.max(1, Math.round(seconds * WAV_SAMPLE_RATE));
  const out = new Uint8Array(44 + samples);
  const v = new DataView(out.buffer);
  const ascii = (off: number, s: string) => [...s].forEach((ch, i) => (out[off + i] = ch.charCodeAt(0)));
  ascii(0, "RIFF");
  v.setUint32(4, 36 + samples, true);
  ascii(8, "WAVE");
  ascii(12, "fmt ");
  v.setUint32(16, 16, true); // fmt chunk size
  v.setUint16(20, 1, true); // PCM
  v.setUint16(22, 1, true); // mono
  v.setUint32(24, WAV_SAMPLE_RATE, true);
  v.setUint32(28, WAV_SAMPLE_RATE, true); // byte rate
  v.setUint16(32, 1, true); // block align
  v.setUint16(34, 8, true); // bits per sample
  ascii(36, "data");
  v.setUint32(40, samples, true);
  const fade = Math.min(samples / 2, WAV_SAMPLE_RATE * 0.05);
  for (let i = 0; i < samples; i++) {
    const env = Math.min(1, i / fade, (samples - i) / fade);
    out[44 + i] = 128 + Math.round(24 * env * Math.sin((2 * Math.PI * hz * i) / WAV_SAMPLE_RATE));
  }
  return out;
}

// ---------------------------------------------------------------------------- MP4

/**
 * 1 s of H.264 test pattern, 96x64 at 8 fps, faststart, no audio (3 KB). Made once with
 * `ffmpeg -f lavfi -i testsrc2=s=96x64:d=1:r=8 -c:v libx264 -preset veryslow -crf 38
 * -pix_fmt yuv420p -movflags +faststart -an -map_metadata -1 -fflags +bitexact`.
 */
const LOCAL_MP4_BASE64 =
  "AAAAIGZ0eXBpc29tAAACAGlzb21pc28yYXZjMW1wNDEAAANgbW9vdgAAAGxtdmhkAAAAAAAAAAAAAAAAAAAD6AAAA+gAAQAAAQAAAAAAAAAAAAAAAAEAAAAAAAAAAAAAAAAAAAABAAAAAAAAAAAAAAAAAABAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAgAAAq90cmFrAAAAXHRraGQAAAADAAAAAAAAAAAAAAABAAAAAAAAA+gAAAAAAAAAAAAAAAAAAAAAAAEAAAAAAAAAAAAAAAAAAAABAAAAAAAAAAAAAAAAAABAAAAAAGAAAABAAAAAAAAkZWR0cwAAABxlbHN0AAAAAAAAAAEAAAPoAAAQAAABAAAAAAInbWRpYQAAACBtZGhkAAAAAAAAAAAAAAAAAABAAAAAQABVxAAAAAAALWhkbHIAAAAAAAAAAHZpZGUAAAAAAAAAAAAAAABWaWRlb0hhbmRsZXIAAAAB0m1pbmYAAAAUdm1oZAAAAAEAAAAAAAAAAAAAACRkaW5mAAAAHGRyZWYAAAAAAAAAAQAAAAx1cmwgAAAAAQAAAZJzdGJsAAAAwnN0c2QAAAAAAAAAAQAAALJhdmMxAAAAAAAAAAEAAAAAAAAAAAAAAAAAAAAAAGAAQABIAAAASAAAAAAAAAABDExhdmMgbGlieDI2NAAAAAAAAAAAAAAAAAAAAAAAAAAAGP//AAAAOGF2Y0MBZAAK/+EAGmdkAAqscgRGJsBEAAADAAQAAAMAQDxIlhGAAQAHaOhDgxLIsP34+AAAAAAQcGFzcAAAAAEAAAABAAAAFGJ0cnQAAAAAAABGcAAARnAAAAAYc3R0cwAAAAAAAAABAAAACAAACAAAAAAUc3RzcwAAAAAAAAABAAAAAQAAADhjdHRzAAAAAAAAAAUAAAACAAAQAAAAAAEAADgAAAAAAQAAGAAAAAACAAAAAAAAAAIAAAgAAAAAHHN0c2MAAAAAAAAAAQAAAAEAAAAIAAAAAQAAADRzdHN6AAAAAAAAAAAAAAAIAAAFRgAAALUAAAEJAAAAkgAAAEkAAABEAAAAPQAAAG4AAAAUc3RjbwAAAAAAAAABAAADkAAAAD11ZHRhAAAANW1ldGEAAAAAAAAAIWhkbHIAAAAAAAAAAG1kaXJhcHBsAAAAAAAAAAAAAAAACGlsc3QAAAAIZnJlZQAACNZtZGF0AAACrwYF//+r3EXpvebZSLeWLNgg2SPu73gyNjQgLSBjb3JlIDE2NCByMzA5NSBiYWVlNDAwIC0gSC4yNjQvTVBFRy00IEFWQyBjb2RlYyAtIENvcHlsZWZ0IDIwMDMtMjAyMiAtIGh0dHA6Ly93d3cudmlkZW9sYW4ub3JnL3gyNjQuaHRtbCAtIG9wdGlvbnM6IGNhYmFjPTEgcmVmPTE2IGRlYmxvY2s9MTowOjAgYW5hbHlzZT0weDM6MHgxMzMgbWU9dW1oIHN1Ym1lPTEwIHBzeT0xIHBzeV9yZD0xLjAwOjAuMDAgbWl4ZWRfcmVmPTEgbWVfcmFuZ2U9MjQgY2hyb21hX21lPTEgdHJlbGxpcz0yIDh4OGRjdD0xIGNxbT0wIGRlYWR6b25lPTIxLDExIGZhc3RfcHNraXA9MSBjaHJvbWFfcXBfb2Zmc2V0PS0yIHRocmVhZHM9MiBsb29rYWhlYWRfdGhyZWFkcz0xIHNsaWNlZF90aHJlYWRzPTAgbnI9MCBkZWNpbWF0ZT0xIGludGVybGFjZWQ9MCBibHVyYXlfY29tcGF0PTAgY29uc3RyYWluZWRfaW50cmE9MCBiZnJhbWVzPTggYl9weXJhbWlkPTIgYl9hZGFwdD0yIGJfYmlhcz0wIGRpcmVjdD0zIHdlaWdodGI9MSBvcGVuX2dvcD0wIHdlaWdodHA9MiBrZXlpbnQ9MjUwIGtleWludF9taW49OCBzY2VuZWN1dD00MCBpbnRyYV9yZWZyZXNoPTAgcmNfbG9va2FoZWFkPTYwIHJjPWNyZiBtYnRyZWU9MSBjcmY9MzguMCBxY29tcD0wLjYwIHFwbWluPTAgcXBtYXg9NjkgcXBzdGVwPTQgaXBfcmF0aW89MS40MCBhcT0xOjEuMDAAgAAAAo9liIEAE/97HEfv5+64uyJZe6bfnwV6jBWX3+bIb21wI1HEOqWeLDKKXOOf3n76h4F+Vyq3gpWxsDHYOP/8//YcCRzaxqP9/OGTgP1tDKH03g4a7SrpdZgvyKCgAHhpNiIbpEVpQ+hTMot9Gfshj/nUpks3ut1Qg2PLUUztLw3m7//E+6Ve0//wnFtmwQbevcVV+0O2C/d+ssFi8guAUXMTK9ejOkkGuk1qFLEt0chN/9Pz4cFebnxZNb/JyVvYdrtsqsXWO8xMjV0iHbO1p2kTfA9+vJSyoB2HWIVH/9CTedBBRh6+CmkoMGcq4u6A5I+/SBN7Inm0yER0quNTjcqXafQEGFZiwRLnwuP6yopVdN8VE9O98IuZ/ivrn6KLLKSds/9Fc+4dQwNiFb0sEaQ9j5ACC4sy+ajIC3HH+h0EWsvIAYBquZk8Zl+/07bW9flIW8jcP+keijkCN/I7TT+td9V5/IBmlOyrCqOEkugEs5Sp6Z20ln58YLMF1L1LV/sV1nDpQCTQXi8OV/yDk7gR8atCCl2eU0cXeYMgvi9VT1sOI5dgIDoKkR9E09BwU3tEwLuY8uDepDF2BPLDZY0WHvbJPSBInW6KTYohukdhtyD+Q19Pbdvv/J/Fx0X3PLOgSf3zpUfilrCv2rN6Hw/wsgYVllvLViuxUTNqsIaqlUkeNUXQP8Bsg1s4xSzYqTwo1zlcnn8G0Mest9uvK1JZ6/s1z7xwvgNTSNpvQjpUbVlzvLF/zz4Njq+0MiSyEwobLdIFHTQTltKQD93lscAFqT0JfrK0eO6seZ4OcqoVe1RJUN+dG0LNZ+OOnmrTsxHL5wag1Lfmst6uhIV0tcQGpICdcXctamwkQdTSBojHAAAAsUGaCC2JP+acZU83+pWyF7m0DsBmXrv/wg1OKKv5dLl/RW72RRw7GEZWLUJUI3zL7I4d/OATn0My5EaDqiTlAhXpsiTpf/CDHSkhSvIHdqeotR2G9et6RRL5vUr9UxpVCmdbtvMGr35/1qjcstxyFFDAyhDiVtqlTf/LgKmRJpVdhjAZRnIj3ytcZi7dhIX6EzJgzZiuknxuPEfmcp7vHkOzZgIo02pgMGMDK4/aVx1hxAAAAQVBmhDr8CBkymEd/+w+4PnYurumg2eXk+Gk4n+0IQjp//HtuUQc0wofVDWhotlyiUTBdK48U5wzKxXgALvAEMOT1Cfa4qj8wjATQ/otwP/9kIWzMv78uMhfOBDO3yh9yrGr44/1yuCXfWdJVfIxnEx7N/wgLysh55PdgwxM1pzSiZz2lPAneWdu+XNxQ69BrfT39zPqEctM/gWfpjJAh8JXjXu7yzcLbEgVAVsKNC/Nz80gsrEW2Wv+LoarUO3ItNlcbVKbtr5HXro1mDK7T+H60rJnWzLTWODpLtRS2bxDCSmUiMDYlPU1dt/UacAU5KCsw22lsdRTRQb56FNYav7/1toOuUEAAACOQZ4YhURH9ZU/5xNfxhyrMlj/lF9EViyLb60xDOlRCIup4tP/2zyKqr6rPkw7QG81ky+ZzdzdrTMiroIezSzI1YcxEMQmMXLuPdfBXKQcZjwHWAZ+TUtWLFV/Ox4RLxvKX8XBYabSdjHMPfb6DNJUZNzOVwRza4ozFU/w1eanw1x3Jc60FdZP6K2azSbB4AAAAEUBniBFIjv/+g82FX6G9fTYLIPWOaBVP24vocFKenDZ5wQR4a9pEwcvfTe3kKgRSOhtPDCALtobK9xiuDj84espeCOYMYEAAABAAZ4gZSI7//bpulHEy1WjLqvJiMU1R7Vfb09eOLKh1EAlkkvb7BohLAMriSJd+x1HjEue3OUW6HZN7SqnEci6HwAAADkBniCtyO/SmRyoNMJs5IZWUXsTKNn7DYoe0SBwJEoqBYb69eaIBA/LGNwtHiCkKcZ/3lzqRljW/WEAAABqAZ4gzcjv2dqwXdEhhEe9Te6/pMntFj1oH1Fr68e6xPqJPV/uroDH4tSAlkipOzXTBkEdpfZH91Y5w0kZOnUAZacz7FPIcJLKq8T9a/EZZ+DdPEeJVo3WeP+csKvBiFO48bAqb4AOf1f+XQ==";

export function localMp4(): Uint8Array {
  const bin = atob(LOCAL_MP4_BASE64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}
