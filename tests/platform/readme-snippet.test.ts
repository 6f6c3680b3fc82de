// The README's supabase-js snippet, run as a newcomer would run it against the stack: it must
// upload a file through Storage and receive the broadcast that the upload causes.
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

describe("README", () => {
  it("the supabase-js snippet uploads a file and receives its broadcast on org:acme", async () => {
    const alice = SEED_USERS.find((u) => u.email === "alice@acme.test")!;
    // Inside the repo, so that the snippet's imports resolve from node_modules as in the README.
    const dir = path.join(ROOT, "node_modules/.cache/plinth-tests");
    fs.mkdirSync(dir, { recursive: true });
    // .mts: under node_modules the root "type": "module" does not apply, and the snippet uses top-level await.
    const file = path.join(dir, `hello-${process.pid}.mts`);
    fs.writeFileSync(file, readmeSnippet("hello"));
    try {
      const { stdout } = await run(path.join(ROOT, "node_modules/.bin/tsx"), [file], {
        cwd: ROOT,
        timeout: 45_000,
        env: { ...process.env, SUPABASE_URL: stack.supabaseUrl, ANON_KEY: stack.anonKey, TOKEN: await tokenFor(alice) },
      });
      const uploaded = /uploaded (\S+)/.exec(stdout)?.[1];
      expect(uploaded, stdout).toMatch(/^a0000000-0000-4000-8000-00000000a000\/hello-\d+\.txt$/);
      expect(stdout).toContain("broadcast on org:acme:");
      expect(stdout).toContain(`name: '${uploaded}'`);
      // The file really is in Storage, owned by alice.
      const { rows } = await admin.query("select owner_id from storage.objects where bucket_id = 'org-files' and name = $1", [uploaded]);
      expect(rows).toEqual([{ owner_id: alice.id }]);
    } finally {
      fs.rmSync(file, { force: true });
    }
  });
});
