// Checks that fail the build: Supabase's advisors, up-to-date client types, the compilers,
// and the hosted import map matching what npm installed.
import { execFile } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { supabaseBin } from "../../scripts/lib/database.ts";
import { ROOT } from "../../scripts/lib/env.ts";
import { denoBin } from "../../scripts/lib/processes.ts";
import { generateTypes, TYPES_FILE } from "../../scripts/lib/types-gen.ts";
import { stack } from "../helpers/db.ts";

const run = promisify(execFile);
const opts = { cwd: ROOT, maxBuffer: 32 * 1024 * 1024, env: { ...process.env, SUPABASE_TELEMETRY_DISABLED: "1", NO_COLOR: "1" } };

describe("build checks", () => {
  it("supabase db advisors reports nothing at warn level or above", async () => {
    const { stdout, stderr } = await run(supabaseBin(), ["db", "advisors", `--remote=${stack.dbUrl}`, "--level", "warn", "--fail-on", "warn"], opts)
      .catch((err) => {
        throw new Error(`advisors failed:\n${err.stdout}\n${err.stderr}`);
      });
    expect(`${stdout}${stderr}`).toMatch(/No issues found/);
  });

  it("the generated client types match the schema (run `npm run types` after a migration)", async () => {
    const fresh = await generateTypes(stack.dbUrl);
    expect(fresh === fs.readFileSync(TYPES_FILE, "utf8"), "database.types.ts is stale: run npm run types").toBe(true);
  });

  it("tsc --noEmit passes", async () => {
    await run(path.join(ROOT, "node_modules/.bin/tsc"), ["--noEmit", "-p", "."], opts).catch((err) => {
      throw new Error(`tsc failed:\n${err.stdout}`);
    });
  });

  it("deno check passes for every function and the local functions server", async () => {
    const entries = fs.readdirSync(path.join(ROOT, "functions"))
      .filter((d) => fs.existsSync(path.join(ROOT, "functions", d, "index.ts")))
      .map((d) => `functions/${d}/index.ts`);
    expect(entries).toEqual(expect.arrayContaining(["functions/api/index.ts", "functions/worker/index.ts"]));
    await run(denoBin(), ["check", "--config", "deno.json", ...entries, "functions/worker/main.ts", "scripts/functions-server.ts"], opts)
      .catch((err) => {
        throw new Error(`deno check failed:\n${err.stderr}`);
      });
  });

  it("functions/deno.json pins exactly the versions npm installed", () => {
    const { imports } = JSON.parse(fs.readFileSync(path.join(ROOT, "functions/deno.json"), "utf8")) as { imports: Record<string, string> };
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8")) as { dependencies: Record<string, string> };
    expect(Object.keys(imports).filter((k) => !k.endsWith("/")).sort()).toEqual(Object.keys(pkg.dependencies).sort());
    for (const name of Object.keys(pkg.dependencies)) {
      const installed = JSON.parse(fs.readFileSync(path.join(ROOT, "node_modules", name, "package.json"), "utf8")).version;
      expect(imports[name]).toBe(`npm:${name}@${installed}`);
      expect(imports[`${name}/`]).toBe(`npm:/${name}@${installed}/`);
    }
  });
});
