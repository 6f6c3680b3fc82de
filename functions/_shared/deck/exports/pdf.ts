// PDF: headless Chromium (Debian's chromium, driven by playwright-core) prints the HTML export,
// one page per card at the card's size. One browser per export, always closed; when there is
// no Chromium the export fails with chromium_missing and says how to install it.
import { chromium } from "playwright-core";
import { cardSize, type ExportInput } from "./model.ts";
import { renderHtml } from "./render-html.ts";

export class ExportError extends Error {
  constructor(readonly code: "chromium_missing" | "invalid_deck" | "render_failed", message: string) {
    super(message);
  }
}

/** Where Chromium is looked for when PLINTH_CHROMIUM_PATH is not set. */
export const CHROMIUM_CANDIDATES = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/lib/chromium/chromium", "/usr/bin/google-chrome"];

async function isFile(path: string): Promise<boolean> {
  const g = globalThis as { Deno?: { stat(p: string): Promise<{ isFile: boolean }> } };
  try {
    if (g.Deno) return (await g.Deno.stat(path)).isFile;
    const fs = await import("node:fs/promises");
    return (await fs.stat(path)).isFile();
  } catch {
    return false;
  }
}

/** The Chromium binary: the configured path (PLINTH_CHROMIUM_PATH), else the first usual place that has one. */
export async function findChromium(configured?: string): Promise<string> {
  const candidates = configured ? [configured] : CHROMIUM_CANDIDATES;
  for (const path of candidates) if (await isFile(path)) return path;
  throw new ExportError("chromium_missing",
    `PDF export needs Chromium, and there is none at ${candidates.join(", ")}. Install it (Debian: apt-get install -y chromium) ` +
    `or set PLINTH_CHROMIUM_PATH to its binary.`);
}

/** The deck as PDF bytes: one page per card, at the card's size. */
export async function renderPdf(input: ExportInput, opts: { chromiumPath?: string } = {}): Promise<Uint8Array> {
  const executablePath = await findChromium(opts.chromiumPath);
  const { px } = cardSize(input.body.dimensions);
  const html = renderHtml(input);
  const browser = await chromium.launch({
    executablePath,
    // No sandbox: the worker often runs as root in a container, where Chromium's sandbox cannot
    // start. What it renders is our own escaped HTML under a CSP that allows no request or script.
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--no-zygote"],
    timeout: 60_000,
  });
  try {
    const context = await browser.newContext({ javaScriptEnabled: false, offline: true, viewport: { width: px.w, height: px.h } });
    const page = await context.newPage();
    // Nothing leaves the browser (the HTML asks for nothing; this makes sure).
    await page.route("**/*", (route) => route.abort());
    await page.setContent(html, { waitUntil: "load", timeout: 60_000 });
    const pdf = await page.pdf({ width: `${px.w}px`, height: `${px.h}px`, printBackground: true, preferCSSPageSize: true, margin: { top: "0", right: "0", bottom: "0", left: "0" } });
    return new Uint8Array(pdf);
  } finally {
    await browser.close().catch(() => {});
  }
}
