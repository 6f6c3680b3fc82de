// The README's snippets, run as a newcomer would run them against the stack: the supabase-js one
// must upload a file through Storage and receive the broadcast that the upload causes; the
// talking-video one must turn the seeded photo into a video with the local provider; the deck one
// must turn a prompt into a deck, its cards arriving in order, and download its PPTX.
import { execFile } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { ROOT } from "../../scripts/lib/env.ts";
import { SEED_USERS } from "../../scripts/lib/seed-users.ts";
import { admin, stack } from "../helpers/db.ts";
import { tokenFor } from "../helpers/supabase.ts";

const run = promisify(execFile);

/** The first ```ts block after a `<!-- snippet:NAME -->` marker in the README. */
function readmeSnippet(name: string): string {
  const readme = fs.readFileSync(path.join(ROOT, "README.md"), "utf8");
  const at = readme.indexOf(`<!-- snippet:${name} -->`);
  expect(at, `README has no snippet:${name} marker`).toBeGreaterThan(-1);
  const m = /```ts\n([\s\S]*?)```/.exec(readme.slice(at));
  expect(m, `no ts block after snippet:${name}`).not.toBeNull();
  return m![1];
}

/** Runs a README snippet with tsx inside the repo (so its imports resolve), as alice. */
async function runSnippet(name: string, env: Record<string, string> = {}): Promise<string> {
  const alice = SEED_USERS.find((u) => u.email === "alice@acme.test")!;
  const dir = path.join(ROOT, "node_modules/.cache/plinth-tests");
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${name}-${process.pid}.mts`);
  fs.writeFileSync(file, readmeSnippet(name));
  try {
    const { stdout } = await run(path.join(ROOT, "node_modules/.bin/tsx"), [file], {
      cwd: dir,
      timeout: 45_000,
      env: { ...process.env, SUPABASE_URL: stack.supabaseUrl, ANON_KEY: stack.anonKey, TOKEN: await tokenFor(alice), ...env },
    });
    return stdout;
  } finally {
    fs.rmSync(file, { force: true });
  }
}

describe("README", () => {
  it("the supabase-js snippet uploads a file and receives its broadcast on org:acme", async () => {
    const alice = SEED_USERS.find((u) => u.email === "alice@acme.test")!;
    const stdout = await runSnippet("hello");
    const uploaded = /uploaded (\S+)/.exec(stdout)?.[1];
    expect(uploaded, stdout).toMatch(/^a0000000-0000-4000-8000-00000000a000\/hello-\d+\.txt$/);
    expect(stdout).toContain("broadcast on org:acme:");
    expect(stdout).toContain(`name: '${uploaded}'`);
    // The file really is in Storage, owned by alice.
    const { rows } = await admin.query("select owner_id from storage.objects where bucket_id = 'org-files' and name = $1", [uploaded]);
    expect(rows).toEqual([{ owner_id: alice.id }]);
  });

  it("the talking-video snippet turns the seeded photo into a video, follows it live and downloads it", async () => {
    // The seeded photo is validated again once its file lands in Storage at start-up.
    const deadline = Date.now() + 30_000;
    while ((await admin.query(`select status from video.uploads where id = 'a0000000-0000-4000-8000-0000000f0001'`)).rows[0]?.status !== "passed") {
      if (Date.now() > deadline) throw new Error("the seeded photo did not pass validation");
      await new Promise((r) => setTimeout(r, 100));
    }
    const stdout = await runSnippet("video");
    expect(stdout).toMatch(/^queued 0%/m);
    expect(stdout).toMatch(/^completed 100% done$/m);
    const m = /downloaded talking-video\.mp4: (\d+) bytes, sha256 ([0-9a-f]{64})/.exec(stdout);
    expect(m, stdout).not.toBeNull();
    const file = path.join(ROOT, "node_modules/.cache/plinth-tests/talking-video.mp4");
    expect(fs.statSync(file).size).toBe(Number(m![1]));
    fs.rmSync(file, { force: true });
  });

  it("the deck snippet turns a prompt into a deck with the local provider, its cards in order, and downloads the PPTX", async () => {
    const stdout = await runSnippet("deck");
    const cards = [...stdout.matchAll(/^card (\d+): /gm)].map((m) => Number(m[1]));
    expect(cards, stdout).toEqual([1, 2, 3, 4, 5, 6]);
    expect(stdout).toMatch(/^completed: 6 cards, 5 images, 28 credits$/m);
    const m = /downloaded deck\.pptx: (\d+) bytes \(deck ([0-9a-f-]{36})\)/.exec(stdout);
    expect(m, stdout).not.toBeNull();
    const file = path.join(ROOT, "node_modules/.cache/plinth-tests/deck.pptx");
    const bytes = fs.readFileSync(file);
    expect(bytes.length).toBe(Number(m![1]));
    expect(bytes.subarray(0, 2).toString()).toBe("PK"); // a zip: the PPTX container
    fs.rmSync(file, { force: true });
    const { rows } = await admin.query(`select kind, jsonb_array_length(body -> 'cards') as n from content.documents where id = $1`, [m![2]]);
    expect(rows).toEqual([{ kind: "deck", n: 6 }]);
  });
});
