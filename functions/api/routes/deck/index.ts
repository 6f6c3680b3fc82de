// The deck module's routes (schema deck; docs/deck.md): generations in Gamma's API shape,
// exports, analytics beacons and AI card operations, each in its own file. Importing this
// registers the deck document kind in the api, so the content routes accept decks.
import type { OpenAPIHono } from "@hono/zod-openapi";
import "../../../_shared/deck/kind.ts";
import type { ApiEnv } from "../../context.ts";
import { registerDeckAnalytics } from "./analytics.ts";
import { registerDeckExports } from "./exports.ts";
import { registerDeckGenerations } from "./generations.ts";
import { registerDeckOperations } from "./operations.ts";

export function registerDeck(app: OpenAPIHono<ApiEnv>) {
  registerDeckAnalytics(app);
  registerDeckExports(app);
  registerDeckOperations(app);
  registerDeckGenerations(app);
}
