// The one HTML renderer: the HTML export is this file as it is, and the PDF is Chromium printing
// it (one page per card, at the card's size). Self-contained: inline CSS with the theme's tokens
// as CSS variables, pictures as data: URIs, local font stacks, no script, and a CSP that forbids
// any request at all. Every string is escaped: a deck's text is user and AI content.
import type { Card } from "../kind.ts";
import { cardTitle } from "../layouts.ts";
import { base64, cardSize, type ExportInput, type Picture, type Theme } from "./model.ts";

const ESCAPES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
/** Text and attribute values: every character with a meaning in HTML becomes an entity. */
export const esc = (s: string) => s.replace(/[&<>"']/g, (c) => ESCAPES[c]);

/** Paragraphs from a text field: blank lines split them, single newlines become <br>. */
function paragraphs(text: string, cls = ""): string {
  return text
    .split(/\n\s*\n/)
    .filter((p) => p.trim())
    .map((p) => `<p${cls ? ` class="${cls}"` : ""}>${esc(p.trim()).replace(/\n/g, "<br>")}</p>`)
    .join("");
}

const h = (text: string, tag = "h2") => (text ? `<${tag}>${esc(text)}</${tag}>` : "");

/** A font stack that never loads anything: the theme's family if the viewer has it, then system fonts. */
function fontStack(family: string, serif: boolean): string {
  const generic = serif
    ? `Georgia, "Times New Roman", serif`
    : `system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, "Noto Sans", "Liberation Sans", sans-serif`;
  return `"${family}", ${generic}`;
}
const SERIF = /serif|playfair|merriweather|georgia|times|garamond/i;

function css(theme: Theme, w: number, h: number, fluid: boolean): string {
  const c = theme.colors;
  return `
:root {
  --deck-bg: ${c.background}; --deck-text: ${c.text}; --deck-accent: ${c.accent}; --deck-muted: ${c.muted};
  --deck-card-bg: ${theme.backgrounds.card}; --deck-title-bg: ${theme.backgrounds.title};
  --deck-radius: ${theme.radii.card}px; --deck-image-radius: ${theme.radii.image}px;
  --deck-heading-font: ${fontStack(theme.fonts.heading, SERIF.test(theme.fonts.heading) && !/sans/i.test(theme.fonts.heading))};
  --deck-body-font: ${fontStack(theme.fonts.body, SERIF.test(theme.fonts.body) && !/sans/i.test(theme.fonts.body))};
  --card-w: ${w}px; --card-h: ${h}px;
}
@page { size: ${w}px ${h}px; margin: 0; }
* { box-sizing: border-box; }
html, body { margin: 0; padding: 0; }
body { background: var(--deck-bg); color: var(--deck-text); font-family: var(--deck-body-font); font-size: 22px; line-height: 1.4;
  -webkit-print-color-adjust: exact; print-color-adjust: exact; }
main { display: flex; flex-direction: column; align-items: center; gap: 32px; padding: 32px 0; }
.card { position: relative; width: var(--card-w); ${fluid ? "min-height" : "height"}: var(--card-h); overflow: hidden; background: var(--deck-card-bg);
  border-radius: var(--deck-radius); box-shadow: 0 2px 16px rgba(0,0,0,.12); padding: 56px 64px; display: flex; gap: 40px; }
.card .content { flex: 1 1 0; min-width: 0; display: flex; flex-direction: column; justify-content: center; }
.card .picture { flex: 0 0 40%; display: flex; align-items: center; justify-content: center; }
.card .picture img { max-width: 100%; max-height: calc(var(--card-h) - 112px); object-fit: contain; border-radius: var(--deck-image-radius); }
.card.pic-left { flex-direction: row-reverse; }
h1, h2, h3 { font-family: var(--deck-heading-font); margin: 0 0 .5em; line-height: 1.15; overflow-wrap: anywhere; }
h1 { font-size: 56px; } h2 { font-size: 40px; } h3 { font-size: 24px; color: var(--deck-accent); }
p { margin: 0 0 .6em; overflow-wrap: anywhere; }
.subtitle { font-size: 26px; color: var(--deck-muted); }
.layout-title, .layout-closing { background: var(--deck-title-bg); }
.layout-title .content, .layout-closing .content, .layout-quote .content { align-items: center; text-align: center; }
ul { margin: 0; padding-left: 1.2em; } li { margin: 0 0 .45em; overflow-wrap: anywhere; } li::marker { color: var(--deck-accent); }
.columns { display: flex; gap: 40px; } .columns > div { flex: 1 1 0; min-width: 0; }
blockquote { margin: 0; font-family: var(--deck-heading-font); font-size: 36px; line-height: 1.3; }
blockquote::before { content: "\\201C"; color: var(--deck-accent); }
blockquote::after { content: "\\201D"; color: var(--deck-accent); }
.attribution { margin-top: 1em; color: var(--deck-muted); font-size: 22px; }
.stats { display: flex; gap: 32px; } .stat { flex: 1 1 0; min-width: 0; }
.stat .value { font-family: var(--deck-heading-font); font-size: 56px; font-weight: 700; color: var(--deck-accent); line-height: 1.1; overflow-wrap: anywhere; }
.stat .label { color: var(--deck-muted); font-size: 20px; }
ol.timeline { list-style: none; margin: 0; padding: 0; display: flex; flex-direction: column; gap: 12px; }
ol.timeline li { display: flex; gap: 20px; font-size: 19px; }
ol.timeline .label { flex: 0 0 28%; font-weight: 700; color: var(--deck-accent); }
ol.timeline .body { flex: 1 1 0; min-width: 0; } ol.timeline p { margin: 0; }
@media print {
  body { background: none; }
  main { display: block; padding: 0; }
  .card { border-radius: 0; box-shadow: none; break-after: page; page-break-after: always; height: var(--card-h); min-height: 0; }
  .card:last-child { break-after: auto; page-break-after: auto; }
}`;
}

function content(card: Card): string {
  switch (card.layout) {
    case "title":
      return h(card.data.title, "h1") + (card.data.subtitle ? `<p class="subtitle">${esc(card.data.subtitle)}</p>` : "");
    case "bullets":
      return h(card.data.title) + `<ul>${card.data.bullets.map((b) => `<li>${esc(b)}</li>`).join("")}</ul>`;
    case "text":
    case "image":
    case "closing":
      return h(card.data.title, card.layout === "closing" ? "h1" : "h2") + paragraphs(card.data.body);
    case "two_column":
      return h(card.data.title) +
        `<div class="columns">${card.data.columns.map((col) => `<div>${h(col.heading, "h3")}${paragraphs(col.body)}</div>`).join("")}</div>`;
    case "quote":
      return `<blockquote>${esc(card.data.quote)}</blockquote>` +
        (card.data.attribution ? `<p class="attribution">— ${esc(card.data.attribution)}</p>` : "");
    case "stats":
      return h(card.data.title) +
        `<div class="stats">${card.data.stats.map((s) => `<div class="stat"><div class="value">${esc(s.value)}</div><div class="label">${esc(s.label)}</div></div>`).join("")}</div>`;
    case "timeline":
      return h(card.data.title) +
        `<ol class="timeline">${card.data.steps.map((s) => `<li><span class="label">${esc(s.label)}</span><span class="body">${paragraphs(s.body)}</span></li>`).join("")}</ol>`;
  }
}

function picture(pic: Picture | undefined, alt: string): string {
  return pic ? `<div class="picture"><img src="data:${pic.mime};base64,${base64(pic.bytes)}" alt="${esc(alt)}"></div>` : "";
}

/** The deck as one self-contained HTML document. */
export function renderHtml(input: ExportInput): string {
  const { px } = cardSize(input.body.dimensions);
  const cards = input.body.cards.map((card, i) => {
    const pic = card.image ? input.pictures.get(card.image.asset_id) : undefined;
    const side = card.layout === "image" && card.data.side === "left" ? " pic-left" : "";
    const label = cardTitle(card) || `Card ${i + 1}`;
    return `<section class="card layout-${card.layout}${side}" id="card-${esc(card.id)}" aria-label="${esc(label)}">` +
      `<div class="content">${content(card)}</div>${picture(pic, card.image?.alt ?? "")}</section>`;
  });
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'; font-src data:; base-uri 'none'; form-action 'none'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="Plinth">
<title>${esc(input.title || "Untitled deck")}</title>
<style>${css(input.theme, px.w, px.h, input.body.dimensions === "fluid")}</style>
</head>
<body>
<main>
${cards.join("\n")}
</main>
</body>
</html>
`;
}
