// Style presets and prompt templates (ai.available_presets: the org's own first, then the
// global ones), applied to a job's input before it is sized and admitted, so the reservation
// covers the prompt that is really sent.
import { sql } from "kysely";
import type { Tx } from "../db/client.ts";
import { ApiError } from "../http/errors.ts";
import type { AnyInput, InputOf } from "./inputs.ts";
import type { Modality } from "./types.ts";

interface PresetRow {
  kind: "style" | "prompt_template";
  modality: Modality;
  body: { prompt_suffix?: string; negative_prompt?: string; template?: string; system?: string };
}

/** Fills {{name}} from variables; a missing variable is the caller's mistake. */
export function fillTemplate(template: string, variables: Record<string, string>): string {
  return template.replace(/\{\{\s*([a-z_][a-z0-9_]*)\s*\}\}/g, (_, name: string) => {
    if (!(name in variables)) throw new ApiError(400, "invalid_request", `the template needs the variable "${name}"`);
    return variables[name];
  });
}

export async function applyPreset(tx: Tx, orgId: string, modality: Modality, input: AnyInput): Promise<AnyInput> {
  const key = (input as { preset?: string }).preset;
  if (!key) return input;
  const { rows } = await sql<PresetRow>`
    select kind, modality, body from ai.available_presets
    where key = ${key} and (org_id = ${orgId} or org_id is null)
    order by global limit 1`.execute(tx);
  const p = rows[0];
  if (!p) throw new ApiError(400, "invalid_request", `no preset "${key}"`);
  if (p.modality !== modality) throw new ApiError(400, "invalid_request", `preset "${key}" is for ${p.modality}, not ${modality}`);
  if (p.kind === "prompt_template") {
    const t = input as InputOf<"text">;
    const variables = { ...(t.variables ?? {}), ...(t.prompt ? { prompt: t.prompt } : {}) };
    return { ...t, prompt: fillTemplate(p.body.template ?? "{{prompt}}", variables), system: t.system ?? p.body.system };
  }
  const s = input as InputOf<"image">;
  return {
    ...s,
    prompt: p.body.prompt_suffix ? `${s.prompt}, ${p.body.prompt_suffix}` : s.prompt,
    ...("negative_prompt" in s || p.body.negative_prompt
      ? { negative_prompt: [s.negative_prompt, p.body.negative_prompt].filter(Boolean).join(", ") || undefined }
      : {}),
  };
}
