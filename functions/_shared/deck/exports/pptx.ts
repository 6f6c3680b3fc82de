// PPTX from the structured cards with pptxgenjs (never from the HTML): one slide per card, text
// in editable text boxes and bullet lists, stats and timelines as tables, the theme's colors and
// fonts, speaker notes from each card's notes, and the card's picture embedded.
import PptxGenJSModule from "pptxgenjs";
import type { Card } from "../kind.ts";
import { base64, cardSize, type ExportInput, type Picture, type Theme } from "./model.ts";

// The package's types are CommonJS-shaped, but Deno and vitest load its ES build, whose default
// export is the class itself.
const PptxGenJS = PptxGenJSModule as unknown as typeof PptxGenJSModule.default;
type Slide = ReturnType<InstanceType<typeof PptxGenJS>["addSlide"]>;
interface Box {
  x: number;
  y: number;
  w: number;
  h: number;
}

const hex = (c: string) => c.replace("#", "");
const MARGIN = 0.6;

/** The picture fitted inside the box, keeping its proportions (centered). */
function contain(pic: Picture, box: Box): Box {
  if (!pic.width || !pic.height) return box;
  const scale = Math.min(box.w / pic.width, box.h / pic.height);
  const w = pic.width * scale;
  const h = pic.height * scale;
  return { x: box.x + (box.w - w) / 2, y: box.y + (box.h - h) / 2, w, h };
}

function addPicture(slide: Slide, pic: Picture, box: Box, alt: string) {
  slide.addImage({ data: `${pic.mime};base64,${base64(pic.bytes)}`, ...contain(pic, box), altText: alt, objectName: "Picture" });
}

/** Lays out one card's text inside `box` (the slide less the picture's side, if any). */
function addContent(slide: Slide, card: Card, box: Box, theme: Theme, size: { w: number; h: number }) {
  const heading = { fontFace: theme.fonts.heading, color: hex(theme.colors.text), bold: true, valign: "top" as const, fit: "shrink" as const, margin: 0 };
  const body = { fontFace: theme.fonts.body, color: hex(theme.colors.text), valign: "top" as const, fit: "shrink" as const, margin: 0 };
  const titleH = 0.9;
  const title = (text: string) => slide.addText(text, { ...heading, x: box.x, y: box.y, w: box.w, h: titleH, fontSize: 30, objectName: "Title" });
  const below = { x: box.x, y: box.y + titleH + 0.15, w: box.w, h: box.h - titleH - 0.15 };
  switch (card.layout) {
    case "title":
    case "closing": {
      const sub = card.layout === "title" ? card.data.subtitle : card.data.body;
      slide.addText(card.data.title, { ...heading, x: box.x, y: size.h * 0.25, w: box.w, h: 1.3, fontSize: 40, align: "center", valign: "bottom", objectName: "Title" });
      if (sub) slide.addText(sub, { ...body, x: box.x, y: size.h * 0.25 + 1.45, w: box.w, h: 1.4, fontSize: 20, align: "center", color: hex(theme.colors.muted) });
      return;
    }
    case "bullets":
      title(card.data.title);
      slide.addText(card.data.bullets.map((b) => ({ text: b, options: { bullet: { indent: 18 }, breakLine: true, paraSpaceAfter: 6 } })),
        { ...body, ...below, fontSize: 20 });
      return;
    case "text":
    case "image":
      title(card.data.title);
      slide.addText(card.data.body, { ...body, ...below, fontSize: 18 });
      return;
    case "two_column": {
      title(card.data.title);
      const gap = 0.4;
      const w = (below.w - gap) / 2;
      card.data.columns.forEach((col, i) => {
        const x = below.x + i * (w + gap);
        slide.addText(col.heading, { ...heading, x, y: below.y, w, h: 0.5, fontSize: 20, color: hex(theme.colors.accent) });
        slide.addText(col.body, { ...body, x, y: below.y + 0.6, w, h: below.h - 0.6, fontSize: 16 });
      });
      return;
    }
    case "quote":
      slide.addText(`\u201C${card.data.quote}\u201D`, { ...heading, bold: false, x: box.x, y: box.y + 0.3, w: box.w, h: box.h - 1.3, fontSize: 30, align: "center", valign: "middle", objectName: "Title" });
      if (card.data.attribution) {
        slide.addText(`\u2014 ${card.data.attribution}`, { ...body, x: box.x, y: box.y + box.h - 0.9, w: box.w, h: 0.6, fontSize: 18, align: "center", color: hex(theme.colors.muted) });
      }
      return;
    case "stats": {
      title(card.data.title);
      const cell = { fontFace: theme.fonts.body, align: "center" as const, valign: "middle" as const, border: { type: "none" as const } };
      slide.addTable([
        card.data.stats.map((s) => ({ text: s.value, options: { ...cell, fontFace: theme.fonts.heading, fontSize: 36, bold: true, color: hex(theme.colors.accent) } })),
        card.data.stats.map((s) => ({ text: s.label, options: { ...cell, fontSize: 16, color: hex(theme.colors.muted) } })),
      ], { x: below.x, y: below.y + 0.3, w: below.w, colW: card.data.stats.map(() => below.w / card.data.stats.length), rowH: [1.1, 0.6] });
      return;
    }
    case "timeline": {
      title(card.data.title);
      const line = { color: hex(theme.colors.muted), pt: 0.5, type: "solid" as const };
      const none = { type: "none" as const };
      slide.addTable(card.data.steps.map((s) => [
        { text: s.label, options: { fontFace: theme.fonts.heading, bold: true, fontSize: 14, color: hex(theme.colors.accent), valign: "top" as const, border: [none, none, line, none] } },
        { text: s.body, options: { fontFace: theme.fonts.body, fontSize: 13, color: hex(theme.colors.text), valign: "top" as const, border: [none, none, line, none] } },
      ]), { x: below.x, y: below.y, w: below.w, colW: [below.w * 0.28, below.w * 0.72], autoPage: false });
      return;
    }
  }
}

/** The deck as a .pptx file's bytes. */
export async function renderPptx(input: ExportInput): Promise<Uint8Array> {
  const { in: size } = cardSize(input.body.dimensions);
  const pptx = new PptxGenJS();
  pptx.defineLayout({ name: "PLINTH_DECK", width: size.w, height: size.h });
  pptx.layout = "PLINTH_DECK";
  pptx.title = input.title;
  pptx.company = "Plinth";
  pptx.theme = { headFontFace: input.theme.fonts.heading, bodyFontFace: input.theme.fonts.body };
  const theme = input.theme;
  for (const card of input.body.cards) {
    const slide = pptx.addSlide();
    const bg = card.layout === "title" || card.layout === "closing" ? theme.backgrounds.title : theme.backgrounds.card;
    slide.background = { color: hex(bg) };
    const full: Box = { x: MARGIN, y: MARGIN * 0.8, w: size.w - 2 * MARGIN, h: size.h - 1.6 * MARGIN };
    const pic = card.image ? input.pictures.get(card.image.asset_id) : undefined;
    let box = full;
    if (pic) {
      const picW = full.w * 0.42;
      const left = card.layout === "image" && card.data.side === "left";
      const picBox = { x: left ? full.x : full.x + full.w - picW, y: full.y, w: picW, h: full.h };
      addPicture(slide, pic, picBox, card.image?.alt ?? "");
      box = { x: left ? full.x + picW + 0.4 : full.x, y: full.y, w: full.w - picW - 0.4, h: full.h };
    }
    addContent(slide, card, box, theme, size);
    if (card.notes) slide.addNotes(card.notes);
  }
  const out = await pptx.write({ outputType: "uint8array", compression: true });
  return out as Uint8Array;
}
