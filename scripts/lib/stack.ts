// The whole local backend from real parts: Postgres 17, the platform stand-in, migrations
// by the Supabase CLI, the seed, the mail sink, the edge functions and worker on Deno, and the
// gateway with the Storage and Realtime stand-ins. `npm start` and the test suite both use this.
import fs from "node:fs";
import path from "node:path";
import { applyMigrations, applyPlatform, applySeed, isSeeded } from "./database.ts";
import { databaseUrl, ROOT, type StackConfig } from "./env.ts";
import { demoCatalog, startFakeStripe } from "./fake-stripe.ts";
import { projectKeys } from "./keys.ts";
import { startMailSink, type MailSink } from "./mail-sink.ts";
import { startGateway } from "../platform/gateway.ts";
import { startAiFakes } from "./ai-fakes.ts";
import { seedStorage } from "./seed-storage.ts";
import { startPostgres } from "./postgres.ts";
import { type Child, GaveUp, spawnDeno, waitFor } from "./processes.ts";

/** Local-only secret for unsubscribe links; hosted projects must set their own (see README). */
export const LOCAL_UNSUBSCRIBE_SECRET = "local-unsubscribe-secret-not-for-production-000";
/** Signing secret of the local fake Stripe's webhooks (keyless `npm start`). */
export const LOCAL_STRIPE_WEBHOOK_SECRET = "whsec_plinth_local_fake_not_for_production";

export interface StackOptions {
  seed: boolean;
  log: (source: string, line: string) => void;
  /** Extra env for the Deno processes (tests point PLINTH_JWKS_URL at their own JWKS). */
  functionsEnv?: Record<string, string>;
  /** Port of the fake AI providers (0 = any free port); default 54327. */
  aiFakePort?: number;
  /** Fake every AI provider even if a key is in the environment (tests never reach a real one). */
  fakeAllAi?: boolean;
  /** Aborting it while the stack starts (a signal to npm start) stops what was started and rejects. */
  signal?: AbortSignal;
}

export interface Stack {
  dbUrl: string;
  /** The project URL clients use (`createClient(supabaseUrl, anonKey)`). */
  supabaseUrl: string;
  functionsUrl: string;
  mailUrl: string;
  /** The fake AI providers' server (control API under /__fake), when any provider has no key. */
  fakeAiUrl?: string;
  anonKey: string;
  serviceRoleKey: string;
  mail: MailSink;
  fresh: boolean;
  stop(): Promise<void>;
}

export async function startStack(cfg: StackConfig, opts: StackOptions): Promise<Stack> {
  const stops: (() => Promise<void>)[] = [];
  const stopAll = async () => {
    for (const stop of stops.reverse()) await stop().catch(() => {});
    stops.length = 0;
  };
  const checkAborted = () => opts.signal?.throwIfAborted();
  try {
    const dbDir = path.join(cfg.dataDir, "db");
    const fresh = !fs.existsSync(path.join(dbDir, "PG_VERSION"));
    fs.mkdirSync(cfg.dataDir, { recursive: true });
    const pg = await startPostgres({
      dir: dbDir,
      port: cfg.dbPort,
      password: cfg.dbPassword,
      log: (l) => opts.log("postgres", l),
      notice: (l) => opts.log("stack", l),
    });
    stops.push(() => pg.stop());
    checkAborted();

    const dbUrl = databaseUrl(cfg);
    opts.log("stack", fresh ? "new database: applying platform, migrations and seed" : "applying pending migrations");
    await applyPlatform(dbUrl);
    await applyMigrations(dbUrl);
    // Seed by content, not by a fresh folder: a first start that failed after initdb still gets it.
    if (opts.seed && !(await isSeeded(dbUrl))) await applySeed(dbUrl);
    checkAborted();

    const mail = await startMailSink({ smtpPort: cfg.mailSmtpPort, httpPort: cfg.mailHttpPort });
    stops.push(() => mail.close());

    // Without a Stripe key (in the env or from the caller), billing runs against the local fake.
    const stripeEnv: Record<string, string> = {};
    if (!process.env.STRIPE_SECRET_KEY && !opts.functionsEnv?.STRIPE_SECRET_KEY) {
      const fake = await startFakeStripe({ port: Number(process.env.PLINTH_STRIPE_PORT ?? 54326), objects: demoCatalog() });
      stops.push(() => fake.close());
      opts.log("stack", `fake Stripe on ${fake.url} (set STRIPE_SECRET_KEY to use Stripe itself)`);
      Object.assign(stripeEnv, {
        STRIPE_SECRET_KEY: fake.secretKey,
        STRIPE_API_BASE: fake.url,
        STRIPE_WEBHOOK_SECRET: process.env.STRIPE_WEBHOOK_SECRET ?? LOCAL_STRIPE_WEBHOOK_SECRET,
      });
    }

    // Without provider keys, the AI gateway's providers run against local fakes of their APIs.
    const ai = await startAiFakes(opts.fakeAllAi ? {} : { ...process.env, ...opts.functionsEnv }, opts.aiFakePort ?? Number(process.env.PLINTH_AI_FAKE_PORT ?? 54327));
    if (ai.fake) {
      stops.push(() => ai.fake!.close());
      opts.log("stack", `fake AI providers on ${ai.fake.url} (set OPENAI_API_KEY and friends to use the real ones)`);
    }

    const keys = await projectKeys(cfg.jwtSecret);
    const supabaseUrl = `http://127.0.0.1:${cfg.gatewayPort}`;
    const functionsUrl = `${supabaseUrl}/functions/v1`;
    const env: Record<string, string> = {
      SUPABASE_DB_URL: dbUrl,
      SUPABASE_URL: supabaseUrl,
      SUPABASE_ANON_KEY: keys.anonKey,
      SUPABASE_SERVICE_ROLE_KEY: keys.serviceRoleKey,
      PLINTH_JWT_SECRET: cfg.jwtSecret,
      PLINTH_EDGE_PORT: String(cfg.edgePort),
      EMAIL_TRANSPORT: "smtp",
      // Local webhook receivers live on 127.0.0.1; production leaves this off (SSRF guard).
      PLINTH_WEBHOOKS_ALLOW_LOOPBACK: "true",
      SMTP_URL: `smtp://127.0.0.1:${cfg.mailSmtpPort}`,
      PLINTH_UNSUBSCRIBE_SECRET: process.env.PLINTH_UNSUBSCRIBE_SECRET ?? LOCAL_UNSUBSCRIBE_SECRET,
      ...stripeEnv,
      ...ai.env,
      ...opts.functionsEnv,
    };

    const gateway = await startGateway({
      port: cfg.gatewayPort,
      dbUrl,
      jwtSecret: cfg.jwtSecret,
      jwksUrl: env.PLINTH_JWKS_URL,
      dataDir: cfg.dataDir,
      functionsUpstream: `http://127.0.0.1:${cfg.edgePort}`,
      log: opts.log,
    });
    stops.push(() => gateway.close());
    // Demo files go in through the Storage API, so their rows and bytes agree.
    if (opts.seed) await seedStorage(gateway.url, keys.serviceRoleKey);
    checkAborted();

    const children: Child[] = [];
    stops.push(async () => {
      await Promise.all(children.map((c) => c.stop()));
    });
    let workerReady = false;
    const worker = spawnDeno("worker", path.join(ROOT, "functions/worker/main.ts"), env, (name, line) => {
      if (line.includes('"worker started"')) workerReady = true;
      opts.log(name, line);
    });
    children.push(worker);
    await waitFor("worker", async () => {
      if (worker.proc.exitCode !== null) throw new GaveUp(`worker exited with ${worker.proc.exitCode}`);
      return workerReady;
    }, 60_000, opts.signal);

    const functions = spawnDeno("functions", path.join(ROOT, "scripts/functions-server.ts"), env, opts.log);
    children.push(functions);
    await waitFor("functions server", async () => {
      if (functions.proc.exitCode !== null) throw new GaveUp(`functions server exited with ${functions.proc.exitCode}`);
      return (await fetch(`${functionsUrl}/api/health`)).ok;
    }, 60_000, opts.signal);

    return {
      dbUrl,
      supabaseUrl,
      functionsUrl,
      mailUrl: `http://127.0.0.1:${cfg.mailHttpPort}`,
      fakeAiUrl: ai.fake?.url,
      ...keys,
      mail,
      fresh,
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}
