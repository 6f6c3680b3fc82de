// Starts one real stack for the whole suite (Postgres, migrations, seed, functions, worker,
// mail sink) on free ports in a temp folder, and tears it down afterwards.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { TestProject } from "vitest/node";
import { stackConfig } from "../../scripts/lib/env.ts";
import { startStack } from "../../scripts/lib/stack.ts";
import { freePort } from "./free-port.ts";
import { startJwksServer } from "./jwks-server.ts";
import { demoCatalog, startFakeStripe } from "../../scripts/lib/fake-stripe.ts";

export interface StackInfo {
  dbUrl: string;
  /** The project URL: functions, storage and realtime behind one port, as on a hosted project. */
  supabaseUrl: string;
  functionsUrl: string;
  mailUrl: string;
  jwtSecret: string;
  anonKey: string;
  serviceRoleKey: string;
  jwksPrivateJwk: Record<string, unknown>;
  /** The fake AI providers the gateway talks to (scripts/fakes/ai.ts): script them per model. */
  fakeAiUrl: string;
  /** The fake Stripe the functions talk to (scripts/lib/fake-stripe.ts). */
  stripeApiBase: string;
  stripeSecretKey: string;
  stripeWebhookSecret: string;
  /** The secret being rotated out: still accepted (STRIPE_WEBHOOK_SECRET lists both). */
  stripeWebhookSecretPrevious: string;
}

declare module "vitest" {
  export interface ProvidedContext {
    stack: StackInfo;
  }
}

export default async function setup(project: TestProject) {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "plinth-test-"));
  const logFile = path.join(dataDir, "stack.log");
  const jwks = await startJwksServer(await freePort());
  const stripe = await startFakeStripe({ objects: demoCatalog() });
  const stripeWebhookSecret = "whsec_plinth_test_suite_secret";
  const stripeWebhookSecretPrevious = "whsec_plinth_test_suite_previous";
  const cfg = {
    ...stackConfig({}),
    dataDir,
    dbPort: await freePort(),
    gatewayPort: await freePort(),
    edgePort: await freePort(),
    mailSmtpPort: await freePort(),
    mailHttpPort: await freePort(),
  };
  const stack = await startStack(cfg, {
    seed: true,
    aiFakePort: 0,
    fakeAllAi: true,
    log: (source, line) => fs.appendFileSync(logFile, `[${source}] ${line}\n`),
    functionsEnv: {
      PLINTH_JWKS_URL: jwks.url,
      PLINTH_MAX_BODY_BYTES: "65536",
      STRIPE_SECRET_KEY: stripe.secretKey,
      STRIPE_WEBHOOK_SECRET: `${stripeWebhookSecret},${stripeWebhookSecretPrevious}`,
      STRIPE_API_BASE: stripe.url,
      PLINTH_RETURN_ORIGINS: "https://app.plinth.test,http://127.0.0.1:3000",
      // Async AI tasks are polled fast here; production polls every 5 s.
      PLINTH_AI_POLL_MS: "150",
      // No cron: a scheduled job must never run in the middle of a test (the purge at :17
      // deleted invitations tests had expired on purpose). Tests run the ones they need.
      PLINTH_WORKER_CRON: "false",
    },
  }).catch((err) => {
    console.error(fs.existsSync(logFile) ? fs.readFileSync(logFile, "utf8").slice(-4000) : "");
    throw err;
  });
  project.provide("stack", {
    dbUrl: stack.dbUrl,
    supabaseUrl: stack.supabaseUrl,
    functionsUrl: stack.functionsUrl,
    mailUrl: stack.mailUrl,
    fakeAiUrl: stack.fakeAiUrl!,
    jwtSecret: cfg.jwtSecret,
    anonKey: stack.anonKey,
    serviceRoleKey: stack.serviceRoleKey,
    jwksPrivateJwk: jwks.privateJwk,
    stripeApiBase: stripe.url,
    stripeSecretKey: stripe.secretKey,
    stripeWebhookSecret,
    stripeWebhookSecretPrevious,
  });
  return async () => {
    await stack.stop();
    await jwks.close();
    await stripe.close();
    if (process.env.PLINTH_KEEP_TEST_DATA !== "1") fs.rmSync(dataDir, { recursive: true, force: true });
  };
}
