// One fake server for every AI provider: each provider module exports its routes under its own
// path prefix (/openai/v1, /anthropic, /stability, ...), so tests and `npm start` point each
// provider's base URL at <fake url>/<prefix> and share one port and one control API (/__fake).
import { type FakeRoute, type FakeServer, startFakeServer } from "./lib/fake-server.ts";
import { anthropicRoutes } from "./anthropic.ts";
import { didRoutes } from "./did.ts";
import { openaiRoutes } from "./openai.ts";
import { replicateRoutes } from "./replicate.ts";
import { runwayRoutes } from "./runway.ts";
import { stabilityRoutes } from "./stability.ts";

/** Every provider's routes. Add a provider by appending its route set here. */
export const aiRoutes: FakeRoute[] = [
  // synchronous providers
  ...openaiRoutes,
  ...anthropicRoutes,
  ...stabilityRoutes,
  // async providers (Replicate, Runway-like, D-ID-like)
  ...replicateRoutes,
  ...runwayRoutes,
  ...didRoutes,
];

export function startFakeAi(opts: { port?: number } = {}): Promise<FakeServer> {
  return startFakeServer({ name: "ai", port: opts.port, routes: aiRoutes });
}
