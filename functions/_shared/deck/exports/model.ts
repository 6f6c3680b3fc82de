// What every renderer gets: the deck at one revision, its theme's tokens (checked so they can
// go into CSS and OOXML as they are), the card size, and each card image's bytes. Loaded by
// the worker with the service role; renderers are pure.
import { sql } from "kysely";
import { readObject, type StorageAccess } from "../../content/storage.ts";
import type { Tx } from "../../db/client.ts";
import { type Card, DEFAULT_THEME, type DeckBody } from "../kind.ts";

export interface Theme {
  colors: { background: string; text: string; accent: string; muted: string };
  fonts: { heading: string; body: string };
  radii: { card: number; image: number };
  backgrounds: { card: string; title: string };
}

export interface Picture {
  mime: "image/png" | "image/jpeg" | "image/gif" | "image/webp";
  bytes: Uint8Array;
  /** Pixels, when the header says (PNG, JPEG, GIF); null otherwise. */
  width: number | null;
  height: number | null;
}

export interface ExportInput {
  title: string;
  body: DeckBody;
  theme: Theme;
  /** Card images by asset id (a missing or unreadable one is left out; the card renders without it). */
  pictures: Map<string, Picture>;
}

/** A card's size: CSS pixels (PDF and HTML) and inches (PPTX). Fluid decks export at 16:9. */
export function cardSize(dimensions: DeckBody["dimensions"]): { px: { w: number; h: number }; in: { w: number; h: number } } {
  return dimensions === "4x3" ? { px: { w: 960, h: 720 }, in: { w: 10, h: 7.5 } } : { px: { w: 960, h: 540 }, in: { w: 10, h: 5.625 } };
}

export const FALLBACK_THEME: Theme = {
  colors: { background: "#FFFFFF", text: "#1B1F24", accent: "#3B5BDB", muted: "#6B7280" },
  fonts: { heading: "Inter", body: "Inter" },
  radii: { card: 12, image: 8 },
  backgrounds: { card: "#FFFFFF", title: "#EEF2FF" },
};

const HEX = /^#[0-9A-Fa-f]{6}$/;
const SHORT_HEX = /^#[0-9A-Fa-f]{3}$/;
const FONT = /^[A-Za-z0-9 _-]{1,60}$/;

/** #RRGGBB, or the fallback: a theme's tokens are org content and end up inside CSS. */
function color(v: unknown, fallback: string): string {
  if (typeof v !== "string") return fallback;
  if (HEX.test(v)) return v.toUpperCase();
  if (SHORT_HEX.test(v)) return `#${[...v.slice(1)].map((c) => c + c).join("")}`.toUpperCase();
  return fallback;
}
const font = (v: unknown, fallback: string) => (typeof v === "string" && FONT.test(v.trim()) ? v.trim() : fallback);
const radius = (v: unknown, fallback: number) => (typeof v === "number" && Number.isFinite(v) && v >= 0 && v <= 64 ? v : fallback);

/** Tokens as stored (deck.global_themes / deck.themes) to a Theme whose every value is safe to print. */
export function themeFrom(tokens: unknown): Theme {
  const t = (tokens ?? {}) as Record<string, Record<string, unknown> | undefined>;
  const f = FALLBACK_THEME;
  return {
    colors: {
      background: color(t.colors?.background, f.colors.background),
      text: color(t.colors?.text, f.colors.text),
      accent: color(t.colors?.accent, f.colors.accent),
      muted: color(t.colors?.muted, f.colors.muted),
    },
    fonts: { heading: font(t.fonts?.heading, f.fonts.heading), body: font(t.fonts?.body, f.fonts.body) },
    radii: { card: radius(t.radii?.card, f.radii.card), image: radius(t.radii?.image, f.radii.image) },
    backgrounds: { card: color(t.backgrounds?.card, f.backgrounds.card), title: color(t.backgrounds?.title, f.backgrounds.title) },
  };
}

/** The deck's theme: a global one by slug, or one of its own org's by id; the default otherwise. */
export async function loadTheme(tx: Tx, orgId: string, themeId: string): Promise<Theme> {
  const { rows } = await sql<{ tokens: unknown }>`
    select tokens from deck.global_themes where id = ${themeId}
    union all
    select tokens from deck.themes where id = ${themeId} and org_id = ${orgId}::uuid
    union all
    select tokens from deck.global_themes where id = ${DEFAULT_THEME}
    limit 1`.execute(tx);
  return themeFrom(rows[0]?.tokens);
}

export const MAX_PICTURE_BYTES = 20 * 1024 * 1024;

/** What the bytes are (never what a name or header claims), for the four formats both outputs show. */
export function sniffPicture(b: Uint8Array): Picture | null {
  const at = (i: number) => b[i] ?? -1;
  const be16 = (i: number) => (at(i) << 8) | at(i + 1);
  const be32 = (i: number) => ((at(i) << 24) >>> 0) + (at(i + 1) << 16) + (at(i + 2) << 8) + at(i + 3);
  if (b.length > 24 && at(0) === 0x89 && at(1) === 0x50 && at(2) === 0x4e && at(3) === 0x47) {
    return { mime: "image/png", bytes: b, width: be32(16), height: be32(20) };
  }
  if (b.length > 10 && at(0) === 0x47 && at(1) === 0x49 && at(2) === 0x46) {
    return { mime: "image/gif", bytes: b, width: at(6) | (at(7) << 8), height: at(8) | (at(9) << 8) };
  }
  if (b.length > 12 && at(0) === 0x52 && at(1) === 0x49 && at(2) === 0x46 && at(3) === 0x46 && at(8) === 0x57 && at(9) === 0x45 && at(10) === 0x42 && at(11) === 0x50) {
    return { mime: "image/webp", bytes: b, width: null, height: null };
  }
  if (b.length > 4 && at(0) === 0xff && at(1) === 0xd8) {
    // Walk the segments to the first start-of-frame for the size.
    let i = 2;
    while (i + 9 < b.length && at(i) === 0xff) {
      const marker = at(i + 1);
      if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
        return { mime: "image/jpeg", bytes: b, width: be16(i + 7), height: be16(i + 5) };
      }
      i += 2 + be16(i + 2);
    }
    return { mime: "image/jpeg", bytes: b, width: null, height: null };
  }
  return null;
}

export interface PictureRow {
  id: string;
  bucket_id: string;
  object_path: string;
}

/** The card images' asset rows: assets of this deck only, uploaded or verified. */
export async function pictureRows(tx: Tx, documentId: string, cards: Card[]): Promise<PictureRow[]> {
  const ids = [...new Set(cards.flatMap((c) => (c.image ? [c.image.asset_id] : [])))];
  if (ids.length === 0) return [];
  const { rows } = await sql<PictureRow>`
    select id, bucket_id, object_path from content.assets
    where id = any(${ids}::uuid[]) and document_id = ${documentId}::uuid and status in ('uploaded', 'verified')`.execute(tx);
  return rows;
}

/** Their bytes (outside any transaction), kept only when they really are a picture. */
export async function readPictures(storage: StorageAccess, rows: PictureRow[]): Promise<Map<string, Picture>> {
  const out = new Map<string, Picture>();
  for (const a of rows) {
    const bytes = await readObject(storage, a.bucket_id, a.object_path, MAX_PICTURE_BYTES);
    const pic = bytes && sniffPicture(bytes);
    if (pic) out.set(a.id, pic);
  }
  return out;
}

export function base64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}
