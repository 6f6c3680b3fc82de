// video.start: a queued talking video is validated and admitted to the AI gateway, in one
// transaction with the video job's row locked: queued → validating → rejected (free, with the
// reason) or reserved (credits for the quote of its estimated seconds held by the gateway). The
// AI job carries the tier's own chain and price (a module route), so whichever provider answers,
// the job settles at the tier's rate on the seconds the provider reports. From here on the
// video job follows its AI job (trigger on ai.jobs, see the jobs migration).
import { sql } from "kysely";
import type { PriceUnit } from "../ai/route.ts";
import { admitJob } from "../ai/submit.ts";
import { asService, type Db, type Tx } from "../db/client.ts";
import { ApiError, fromPostgresError } from "../http/errors.ts";
import type { JobSender } from "../jobs/queue.ts";
import { PHOTO_BUCKET } from "./uploads.ts";

export interface StartDeps {
  db: Db;
  jobs: JobSender;
}

interface StartRow {
  id: string;
  org_id: string;
  user_id: string | null;
  status: string;
  tier: string;
  ai_tier: "economy" | "balanced" | "premium";
  title: string | null;
  script: { text: string; voice: string; language?: string } | null;
  ratio: string;
  resolution: string;
  est_seconds: number;
  run: number;
  attempt: number;
  price_per_units: number;
  price_credits: number;
  photo_path: string | null;
  photo_ok: boolean;
  audio_path: string | null;
  audio_ok: boolean | null;
  deployments: string[];
}

/** What a talking photo asks an image-to-video provider for, beside the script it speaks. */
const PROMPT = "The person in the photo looks into the camera and speaks naturally, with subtle head movement.";

async function reject(tx: Tx, id: string, code: string, message: string): Promise<Record<string, unknown>> {
  await sql`update video.jobs set status = 'rejected', error = ${JSON.stringify({ code, message })}::jsonb, finished_at = now(),
                                  charged_credits = 0, charged_inr_minor = 0, charged_usd_cents = 0
            where id = ${id}`.execute(tx);
  return { status: "rejected", code };
}

export async function startVideoJob(deps: StartDeps, jobId: string): Promise<Record<string, unknown>> {
  return await asService(deps.db, async (tx) => {
    const { rows } = await sql<StartRow>`
      select j.id, j.org_id, j.user_id, j.status, j.tier, t.ai_tier, j.title, j.script, j.ratio, j.resolution,
             j.est_seconds::float8 as est_seconds, j.run, j.attempt, p.per_units as price_per_units, p.credits as price_credits,
             ph.path as photo_path, (ph.status = 'passed' and ph.kind = 'photo' and ph.deleted_at is null) as photo_ok,
             au.path as audio_path, (au.status = 'passed' and au.kind = 'audio' and au.deleted_at is null) as audio_ok,
             array(select d.deployment_id from video.tier_deployments d where d.tier_key = j.tier order by d.position) as deployments
      from video.jobs j
      join video.tiers t on t.key = j.tier
      join video.tier_prices p on p.id = j.price_id
      left join video.uploads ph on ph.id = j.photo_id
      left join video.uploads au on au.id = j.audio_id
      where j.id = ${jobId}
      for update of j`.execute(tx);
    const job = rows[0];
    if (!job || job.status !== "queued") return { skipped: job ? `job is ${job.status}` : "no such job" };
    // Seen live (the broadcast goes out at commit), though this transaction decides at once.
    await sql`update video.jobs set status = 'validating', progress_message = 'checking the photo and script' where id = ${job.id}`.execute(tx);
    if (!job.photo_ok) return await reject(tx, job.id, "photo_unavailable", "the photo was deleted or no longer passes validation");
    if (job.audio_ok === false) return await reject(tx, job.id, "audio_unavailable", "the voice track was deleted or no longer passes validation");
    if (!job.user_id) return await reject(tx, job.id, "no_owner", "the member who made this video has left");

    const run = job.run + 1;
    const input: Record<string, unknown> = {
      prompt: PROMPT,
      image_path: `${PHOTO_BUCKET}/${job.photo_path}`,
      duration_seconds: job.est_seconds,
      resolution: job.resolution,
      ratio: job.ratio,
    };
    if (job.script) input.script = job.script;
    if (job.audio_path) input.audio_path = `${PHOTO_BUCKET}/${job.audio_path}`;
    await sql`savepoint admit`.execute(tx);
    let aiJobId: string;
    try {
      const { job: ai } = await admitJob(tx, deps.jobs, { orgId: job.org_id, userId: job.user_id, apiKeyId: null }, {
        modality: "video", tier: job.ai_tier, source: "video", input, idempotencyKey: `video:${job.id}:${run}`,
        route: { deployments: job.deployments, price: { unit: "video_second" as PriceUnit, per_units: Number(job.price_per_units), credits: Number(job.price_credits) } },
      });
      aiJobId = ai.id;
    } catch (err) {
      // Refused before anything was held (credits, policy, plan, no provider left): a free rejection.
      // A rate limit or an outage is passed on: the job is retried.
      const known = err instanceof ApiError ? err : fromPostgresError(err);
      if (!known || known.status >= 500 || known.status === 429) throw err;
      await sql`rollback to savepoint admit`.execute(tx);
      return await reject(tx, job.id, /insufficient credits/.test(known.message) ? "insufficient_credits" : known.code, known.message);
    }
    await sql`insert into video.job_runs (job_id, run, org_id, ai_job_id) values (${job.id}, ${run}, ${job.org_id}, ${aiJobId})`.execute(tx);
    await sql`update video.jobs set status = 'reserved', run = ${run}, ai_job_id = ${aiJobId}, attempts_before = attempt,
                                    progress_message = 'credits held; waiting for a provider'
              where id = ${job.id}`.execute(tx);
    return { status: "reserved", ai_job_id: aiJobId, run };
  });
}
