// JSON the keyless `local` provider answers when a JSON request carries a JSON Schema: a request
// (any message) with a fenced block opened by ```json-schema holds the schema its answer must
// follow, the way modules that need structured output (the deck pipeline) write their prompts.
// The instance is deterministic and built from the prompt's own words, so a keyless run turns a
// prompt into schema-valid data (an outline, cards) instead of a placeholder. Supported: type
// object / array / string / number / integer / boolean, properties + required, items, enum,
// const, anyOf / oneOf (the first branch), minItems / maxItems, minLength / maxLength,
// minimum / maximum.

export type JsonSchema = {
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  items?: JsonSchema;
  enum?: unknown[];
  const?: unknown;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  minItems?: number;
  maxItems?: number;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  description?: string;
};

const FENCE = /```json-schema\s*\n([\s\S]*?)\n```/g;

/** The last JSON Schema block in the texts (a later message overrides an earlier one), or null. */
export function schemaIn(texts: string[]): JsonSchema | null {
  let found: JsonSchema | null = null;
  for (const text of texts) {
    for (const m of text.matchAll(FENCE)) {
      try {
        const parsed = JSON.parse(m[1]);
        if (parsed && typeof parsed === "object") found = parsed as JsonSchema;
      } catch {
        // Not JSON: not a schema.
      }
    }
  }
  return found;
}

/** Text without its schema blocks (what the instance's words are taken from). */
export function withoutSchemas(text: string): string {
  return text.replace(FENCE, " ");
}

/**
 * A deterministic instance of `schema`: strings are phrases of `words` taken in turn (so titles
 * differ from one another), enums take their values in turn, arrays have min(3, maxItems) items
 * (at least minItems).
 */
export function instanceOf(schema: JsonSchema, words: string[]): unknown {
  let cursor = 0;
  const pool = words.length ? words : ["placeholder", "content", "local", "provider"];
  const phrase = (n: number) => {
    const out: string[] = [];
    for (let i = 0; i < n; i++) out.push(pool[(cursor + i) % pool.length]);
    cursor = (cursor + Math.max(1, n - 1)) % pool.length;
    const s = out.join(" ");
    return s.charAt(0).toUpperCase() + s.slice(1);
  };
  // Each enum (by its place in the schema) takes its values in turn, so the items of an array
  // differ (one layout per card, say) instead of all taking the first.
  const turns = new Map<JsonSchema, number>();
  const gen = (s: JsonSchema, name: string): unknown => {
    if (s.const !== undefined) return s.const;
    if (Array.isArray(s.enum) && s.enum.length) {
      const turn = turns.get(s) ?? 0;
      turns.set(s, turn + 1);
      return s.enum[turn % s.enum.length];
    }
    const branch = s.anyOf?.[0] ?? s.oneOf?.[0];
    if (branch) return gen(branch, name);
    const type = Array.isArray(s.type) ? s.type.find((t) => t !== "null") ?? "null" : s.type ?? (s.properties ? "object" : "string");
    switch (type) {
      case "object": {
        const out: Record<string, unknown> = {};
        for (const [k, v] of Object.entries(s.properties ?? {})) out[k] = gen(v, k);
        return out;
      }
      case "array": {
        const n = Math.max(s.minItems ?? 0, Math.min(3, s.maxItems ?? 3));
        return Array.from({ length: n }, () => gen(s.items ?? { type: "string" }, name));
      }
      case "integer":
      case "number": {
        const n = Math.max(s.minimum ?? 1, Math.min(s.maximum ?? 42, 42));
        return type === "integer" ? Math.round(n) : n;
      }
      case "boolean":
        return true;
      case "null":
        return null;
      default: {
        const long = /body|text|description|notes|summary|quote/i.test(name);
        let str = long ? `${phrase(6)}. ${phrase(8)}.` : phrase(3);
        if (s.maxLength !== undefined) str = str.slice(0, s.maxLength).trimEnd();
        while (str.length < (s.minLength ?? 0)) str += ` ${phrase(1)}`;
        if (s.maxLength !== undefined) str = str.slice(0, s.maxLength);
        return str;
      }
    }
  };
  return gen(schema, "");
}
