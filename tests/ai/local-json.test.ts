// The keyless local provider's structured answers: a JSON request whose messages carry a JSON
// Schema (a ```json-schema block) is answered with an instance of it, built from the prompt's
// words, deterministic, valid for the deck's every card layout; without a schema, JSON requests
// keep the placeholder object they always had.
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { instanceOf, schemaIn } from "../../functions/_shared/ai/providers/local-json.ts";
import { createLocalAdapter } from "../../functions/_shared/ai/providers/local.ts";
import type { ProviderConnection } from "../../functions/_shared/ai/types.ts";
import { LAYOUT_NAMES, LAYOUTS } from "../../functions/_shared/deck/layouts.ts";

const conn: ProviderConnection = { id: "local", kind: "local", baseUrl: null, apiKey: "", timeoutMs: 1_000 };
const local = createLocalAdapter(conn);
const block = (schema: z.ZodType) => "```json-schema\n" + JSON.stringify(z.toJSONSchema(schema)) + "\n```";
const WORDS = ["solar", "garden", "neighbours", "panels", "savings", "roof"];

describe("instances of a JSON Schema", () => {
  it("are valid for every card layout", () => {
    for (const layout of LAYOUT_NAMES) {
      const value = instanceOf(z.toJSONSchema(LAYOUTS[layout]) as never, WORDS);
      expect(LAYOUTS[layout].safeParse(value).success, `${layout}: ${JSON.stringify(value)}`).toBe(true);
    }
  });

  it("hold exact array lengths, and enums take their values in turn", () => {
    const schema = z.strictObject({ cards: z.array(z.strictObject({ layout: z.enum(["title", "bullets", "closing"]), title: z.string().max(20) })).length(5) });
    const value = schema.parse(instanceOf(z.toJSONSchema(schema) as never, WORDS));
    expect(value.cards).toHaveLength(5);
    expect(value.cards.map((c) => c.layout)).toEqual(["title", "bullets", "closing", "title", "bullets"]);
    expect(new Set(value.cards.map((c) => c.title)).size).toBeGreaterThan(1);
  });

  it("the last schema block of the messages is the one answered; broken blocks are ignored", () => {
    expect(schemaIn(["```json-schema\n{nope\n```", "no block"])).toBeNull();
    expect(schemaIn(["```json-schema\n{\"type\": \"string\"}\n```", "```json-schema\n{\"type\": \"integer\"}\n```"])).toEqual({ type: "integer" });
  });
});

describe("the local provider", () => {
  const schema = z.strictObject({ title: z.string().max(200), bullets: z.array(z.string().max(400)).min(1).max(10) });
  const req = (user: string, system = `Answer in JSON.\n${block(schema)}`) => ({
    model: "local-text", maxTokens: 2_000, responseFormat: "json" as const,
    messages: [{ role: "system" as const, content: system }, { role: "user" as const, content: user }],
  });

  it("answers a JSON request carrying a schema with an instance of it, from the prompt's words, the same every time", async () => {
    const a = await local.chat!(req("Community solar gardens for apartment neighbours"));
    const b = await local.chat!(req("Community solar gardens for apartment neighbours"));
    expect(a.text).toBe(b.text);
    expect(a.finishReason).toBe("stop");
    const value = schema.parse(JSON.parse(a.text));
    expect(value.title).toMatch(/Community|solar|gardens/i);
    expect(a.usage.outputTokens).toBeGreaterThan(0);
  });

  it("without a schema, a JSON request still gets the placeholder object", async () => {
    const r = await local.chat!(req("Community solar gardens", "Answer in JSON."));
    expect(Object.keys(JSON.parse(r.text))).toEqual(expect.arrayContaining(["keywords", "ref"]));
  });
});
