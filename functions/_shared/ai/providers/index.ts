// One adapter per provider kind; each speaks its provider's wire format (see ../types.ts).
import type { ProviderAdapter, ProviderConnection } from "../types.ts";
import { createAnthropicAdapter } from "./anthropic.ts";
import { createDidAdapter } from "./did.ts";
import { createLocalAdapter } from "./local.ts";
import { createOpenAIAdapter } from "./openai.ts";
import { createReplicateAdapter } from "./replicate.ts";
import { createRunwayAdapter } from "./runway.ts";
import { createStabilityAdapter } from "./stability.ts";

export function createAdapter(conn: ProviderConnection): ProviderAdapter {
  switch (conn.kind) {
    case "openai":
      return createOpenAIAdapter(conn);
    case "anthropic":
      return createAnthropicAdapter(conn);
    case "stability":
      return createStabilityAdapter(conn);
    case "replicate":
      return createReplicateAdapter(conn);
    case "runway":
      return createRunwayAdapter(conn);
    case "did":
      return createDidAdapter(conn);
    case "local":
      return createLocalAdapter(conn);
  }
}
