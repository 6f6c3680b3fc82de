// Deck exports, each format read back as its reader would: the PPTX unzipped (one slide per
// card, each slide's title, the picture embedded, notes as speaker notes, the slide size), the
// PDF opened with pdf-lib (one page per card at the card's size), and the HTML opened in
// Chromium with every request intercepted (none but the document itself; a title holding
// <script> shows as text and never runs).
import { unzipSync } from "fflate";
import { PDFDocument } from "pdf-lib";
import { chromium } from "playwright-core";
import { beforeAll, describe, expect, it } from "vitest";
import { findChromium } from "../../functions/_shared/deck/exports/pdf.ts";
import { createTeam, type Team } from "../helpers/db.ts";
import { askExport, createDeck, deckBody, downloadExport, saveDeck, simpleCards, uploadPicture } from "./export-helpers.ts";

let team: Team;
beforeAll(async () => {
  team = await createTeam("Exports");
});

const text = (b: Uint8Array) => new TextDecoder().decode(b);
/** The text runs of a slide's XML, joined (a title may be split across runs). */
const slideText = (xml: string) => [...xml.matchAll(/<a:t>([^<]*)<\/a:t>/g)].map((m) => m[1]).join(" ");
const xmlEsc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

describe("PPTX", () => {
  it("one editable slide per card with its title, the card's picture embedded, notes as speaker notes, at 16:9", async () => {
    const saved = await createDeck(team.member, team.orgId, deckBody(simpleCards(1)), "Quarterly plan");
    const picture = await uploadPicture(team.member, saved.id, 80, 45);
    const cards = [
      { id: "t", layout: "title", data: { title: "Quarterly plan", subtitle: "Where we are" }, notes: "Open with the headline number." },
      { id: "b", layout: "bullets", data: { title: "Priorities & risks", bullets: ["Hire two engineers", "Ship exports"] } },
      { id: "i", layout: "image", data: { title: "Usage is growing", body: "Up and to the right.", side: "right" }, image: { asset_id: picture, alt: "A chart" } },
      { id: "s", layout: "stats", data: { title: "In numbers", stats: [{ value: "120", label: "teams" }, { value: "4.8", label: "rating" }] } },
      { id: "l", layout: "timeline", data: { title: "Timeline", steps: [{ label: "Q1", body: "Beta" }, { label: "Q2", body: "GA" }] } },
      { id: "q", layout: "quote", data: { quote: "Ship small, ship often", attribution: "The team" } },
      { id: "c", layout: "closing", data: { title: "Questions?", body: "team@example.test" } },
    ];
    const revision = await saveDeck(team.member, saved, saved.revision, deckBody(cards));

    const res = await askExport(team.member, saved.id, { format: "pptx" });
    expect(res.status, res.raw).toBe(202);
    expect(res.body.export).toMatchObject({ format: "pptx", revision, status: "queued", document_id: saved.id });
    expect(res.body.url).toBeNull();
    const { bytes, url } = await downloadExport(team.member, res.body.export.id);
    expect(new URL(url).searchParams.get("download")).toBe("Quarterly-plan.pptx");
    const zip = unzipSync(bytes);
    const slides = Object.keys(zip).filter((n) => /^ppt\/slides\/slide\d+\.xml$/.test(n));
    expect(slides).toHaveLength(cards.length);
    const titles = ["Quarterly plan", "Priorities & risks", "Usage is growing", "In numbers", "Timeline", "Ship small, ship often", "Questions?"];
    titles.forEach((t, i) => expect(slideText(text(zip[`ppt/slides/slide${i + 1}.xml`])), `slide ${i + 1}`).toContain(xmlEsc(t)));
    // Bullets are a real bullet list, stats and the timeline real tables: editable, not pictures of text.
    expect(text(zip["ppt/slides/slide2.xml"])).toMatch(/<a:buChar /);
    expect(text(zip["ppt/slides/slide4.xml"])).toContain("<a:tbl>");
    expect(text(zip["ppt/slides/slide5.xml"])).toContain("<a:tbl>");
    // The image card's picture is in the file, on its slide.
    const media = Object.keys(zip).filter((n) => n.startsWith("ppt/media/"));
    expect(media.length).toBeGreaterThanOrEqual(1);
    expect(text(zip["ppt/slides/_rels/slide3.xml.rels"])).toMatch(/\.\.\/media\/image[^"]*\.png/);
    expect(text(zip["ppt/slides/slide3.xml"])).toContain('descr="A chart"');
    // Speaker notes, the theme's colors and fonts, and the slide size (10 x 5.625 in).
    const notes = Object.keys(zip).filter((n) => /^ppt\/notesSlides\/notesSlide\d+\.xml$/.test(n)).map((n) => text(zip[n]));
    expect(notes.some((n) => n.includes("Open with the headline number."))).toBe(true);
    expect(text(zip["ppt/slides/slide1.xml"])).toContain('typeface="Inter"');
    expect(text(zip["ppt/slides/slide1.xml"])).toContain('val="EEF2FF"'); // plinth-light's title background
    expect(text(zip["ppt/presentation.xml"])).toContain('<p:sldSz cx="9144000" cy="5143500"');
  });

  it("4:3 decks get 4:3 slides", async () => {
    const deck = await createDeck(team.member, team.orgId, deckBody(simpleCards(2), { dimensions: "4x3", theme_id: "forest" }));
    const res = await askExport(team.member, deck.id, { format: "pptx" });
    const zip = unzipSync((await downloadExport(team.member, res.body.export.id)).bytes);
    expect(text(zip["ppt/presentation.xml"])).toContain('<p:sldSz cx="9144000" cy="6858000"');
  });
});

describe("PDF", () => {
  for (const [dimensions, size] of [["16x9", { width: 720, height: 405 }], ["4x3", { width: 720, height: 540 }]] as const) {
    it(`one page per card at the card's size (${dimensions})`, async () => {
      const deck = await createDeck(team.member, team.orgId, deckBody(simpleCards(5), { dimensions }));
      const res = await askExport(team.member, deck.id, { format: "pdf" });
      expect(res.status, res.raw).toBe(202);
      const { bytes, contentType } = await downloadExport(team.member, res.body.export.id);
      expect(contentType).toMatch(/application\/pdf/);
      const pdf = await PDFDocument.load(bytes);
      expect(pdf.getPageCount()).toBe(5);
      for (const page of pdf.getPages()) {
        const got = page.getSize();
        expect(Math.round(got.width)).toBe(size.width);
        expect(Math.round(got.height)).toBe(size.height);
      }
    });
  }
});

describe("HTML", () => {
  it("opens offline: no request but the document itself, the text is there, and injected markup stays text", async () => {
    const evil = `Launch <script>window.__pwned = 1</script><img src="https://tracker.example/x.png" onerror="window.__pwned = 2">`;
    const deck = await createDeck(team.member, team.orgId, deckBody([
      { id: "t", layout: "title", data: { title: evil, subtitle: "Sub </style><style>body{background:url(https://tracker.example/bg)}</style>" } },
      { id: "b", layout: "bullets", data: { title: "Agenda", bullets: ["<b>not bold</b>", "Plain & simple"] } },
      { id: "i", layout: "image", data: { title: "Picture", body: "", side: "left" } },
    ]), "HTML deck");
    const picture = await uploadPicture(team.member, deck.id, 40, 30);
    // Point the image card at the picture (a save, so a new revision).
    const body = deckBody([
      { id: "t", layout: "title", data: { title: evil, subtitle: "Sub </style><style>body{background:url(https://tracker.example/bg)}</style>" } },
      { id: "b", layout: "bullets", data: { title: "Agenda", bullets: ["<b>not bold</b>", "Plain & simple"] } },
      { id: "i", layout: "image", data: { title: "Picture", body: "", side: "left" }, image: { asset_id: picture, alt: "A picture" } },
    ]);
    await saveDeck(team.member, deck, deck.revision, body);
    const res = await askExport(team.member, deck.id, { format: "html" });
    expect(res.status, res.raw).toBe(202);
    const { bytes } = await downloadExport(team.member, res.body.export.id);
    const html = text(bytes);
    expect(html).not.toMatch(/<script/i);
    // The injected URLs are there only as escaped text, never as a source or link.
    expect(html).not.toMatch(/(src|href)\s*=\s*["']?https?:/i);
    expect(html).toContain("data:image/png;base64,");

    const browser = await chromium.launch({ executablePath: await findChromium(), args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"] });
    try {
      const page = await browser.newPage();
      const requests: string[] = [];
      const DOC = "https://export.test/deck.html";
      await page.route("**/*", async (route) => {
        requests.push(route.request().url());
        if (route.request().url() === DOC) await route.fulfill({ status: 200, contentType: "text/html", body: html });
        else await route.abort();
      });
      await page.goto(DOC, { waitUntil: "load" });
      expect(requests).toEqual([DOC]);
      expect(await page.locator("section.card").count()).toBe(3);
      expect(await page.locator("h1").first().textContent()).toBe(evil);
      expect(await page.locator("li").first().textContent()).toBe("<b>not bold</b>");
      expect(await page.locator("script").count()).toBe(0);
      expect(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned)).toBeUndefined();
      // The picture shows from its data: URI, with its alt text.
      const img = page.locator("img");
      expect(await img.count()).toBe(1);
      expect(await img.getAttribute("alt")).toBe("A picture");
      expect(await img.evaluate((el) => (el as HTMLImageElement).naturalWidth)).toBe(40);
      // Theme tokens are CSS variables.
      expect(await page.evaluate(() => getComputedStyle(document.documentElement).getPropertyValue("--deck-accent").trim())).toBe("#3B5BDB");
    } finally {
      await browser.close();
    }
  });
});
