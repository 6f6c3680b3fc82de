-- Talking videos, part 2: quality tiers (data: a provider chain, a price per second in INR and
-- USD and in credits, a maximum length), video.quote(), and video jobs.
--
-- A video job is a product-level view of the AI gateway's work, not a second engine: the
-- worker's video.start validates and admits one AI job (modality video) with the tier's chain
-- and price (the gateway's module route), and from then on the video job's state is derived
-- from that AI job and its attempts by a trigger on ai.jobs. One reservation per AI job, one
-- settle, on the seconds the provider reported; a user's retry admits a fresh AI job for the
-- same video job only after the previous one failed (its reservation was voided), so nothing is
-- ever charged twice.

create table video.tiers (
  key text primary key check (key ~ '^[a-z][a-z0-9_-]{1,31}$'),
  name text not null check (length(name) between 1 and 100),
  description text not null default '',
  ai_tier text not null check (ai_tier in ('economy', 'balanced', 'premium')),
  unit text not null default 'second' check (unit in ('second', 'image')),
  max_seconds int not null check (max_seconds between 1 and 300),
  position int not null default 0,
  enabled boolean not null default true,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
comment on table video.tiers is 'Quality tiers of talking videos, edited by admins in Studio: a provider chain (video.tier_deployments), a price (video.tier_prices, versioned) and a maximum length.';
comment on column video.tiers.key is 'What clients send as tier (economy, balanced, premium, or an admin''s own).';
comment on column video.tiers.ai_tier is 'The AI gateway tier a job of this tier counts as for the org''s AI policy and plan (premium needs ai_premium_tier).';
comment on column video.tiers.unit is 'How the price is stated: per second, or per image for image-based tiers, which make one image per second of video (so a second costs one image).';
comment on column video.tiers.max_seconds is 'The longest video this tier makes; longer scripts are refused (400) before anything is held.';
comment on column video.tiers.position is 'Order in pickers and the cost calculator.';
comment on column video.tiers.enabled is 'Off: not offered, and new jobs are refused.';

create table video.tier_deployments (
  tier_key text not null references video.tiers (key) on update cascade on delete cascade,
  position int not null check (position >= 0),
  deployment_id text not null references ai.deployments (id) on delete cascade,
  primary key (tier_key, position)
);
create index tier_deployments_deployment_idx on video.tier_deployments (deployment_id);
comment on table video.tier_deployments is 'A tier''s ordered provider chain: AI gateway deployments (modality video), first healthy first; the rest are fallbacks (only after a confirmed failure; a refusal ends the job).';
comment on column video.tier_deployments.position is 'Order in the chain, lowest first.';

create table video.tier_prices (
  id uuid primary key default gen_random_uuid(),
  tier_key text not null references video.tiers (key) on update cascade on delete cascade,
  per_units bigint not null check (per_units > 0),
  inr_minor bigint not null check (inr_minor >= 0),
  usd_cents bigint not null check (usd_cents >= 0),
  credits bigint not null check (credits >= 0),
  effective_from timestamptz not null default now(),
  created_at timestamptz not null default now(),
  unique (tier_key, effective_from)
);
comment on table video.tier_prices is 'Versioned tier prices: add a row with a later effective_from to change one (rows are never edited: a job keeps the price it was quoted). A job of this tier is reserved and settled at credits per per_units units whichever provider answers.';
comment on column video.tier_prices.per_units is 'How many units (seconds, or images) the three amounts are for: ₹0.039 an image is 3900 paise per 1000.';
comment on column video.tier_prices.inr_minor is 'Price in paise for per_units units.';
comment on column video.tier_prices.usd_cents is 'Price in US cents for per_units units.';
comment on column video.tier_prices.credits is 'Credits charged for per_units units (1 credit = US$0.01).';
comment on column video.tier_prices.effective_from is 'In force from this time until a later row of the same tier.';

create trigger tiers_updated_at before update on video.tiers for each row execute function private.set_updated_at();

-- Versioned rows are added, never changed (a quote, a job or an export points at the row it used).
create or replace function private.video_append_only() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  raise exception '% rows are versioned: add a row with a later date instead of editing one', tg_table_name using errcode = '55000';
end
$$;
revoke all on function private.video_append_only() from public;
create trigger tier_prices_append_only before update on video.tier_prices for each row execute function private.video_append_only();

-- The default catalog: the seed's tiers (TalkingPhoto). Deployments for Nano Banana and Veo 3 run
-- on Replicate (its adapter and fake); premium is Runway. `npm start` puts the keyless local
-- provider first in each chain (sql/seed/07_video.sql). Provider costs below are placeholders to
-- replace with your contract's prices; what orgs pay is the tier price.
insert into ai.models (id, modality, capabilities, description) values
  ('nano-banana', 'video', '{talking_photo}', 'Google Nano Banana frames of a talking photo (one image a second), on Replicate'),
  ('veo-3', 'video', '{image_to_video,talking_photo}', 'Google Veo 3 image to video with speech, on Replicate')
on conflict (id) do nothing;
insert into ai.deployments (id, model_id, provider_id, provider_model, priority) values
  ('replicate/nano-banana', 'nano-banana', 'replicate', 'google/nano-banana', 10),
  ('replicate/veo-3', 'veo-3', 'replicate', 'google/veo-3', 10)
on conflict (id) do nothing;
insert into ai.prices (deployment_id, unit, variant, per_units, provider_cost_micros, credits, effective_from) values
  ('replicate/nano-banana', 'video_second', '', 1, 39000, 8, '2026-01-01'),
  ('replicate/veo-3', 'video_second', '', 1, 400000, 80, '2026-01-01')
on conflict do nothing;

insert into video.tiers (key, name, description, ai_tier, unit, max_seconds, position) values
  ('economy', 'Economy', 'Nano Banana: a talking photo made of stills, one a second', 'economy', 'image', 60, 0),
  ('balanced', 'Balanced', 'Veo 3: full motion with speech', 'balanced', 'second', 120, 1),
  ('premium', 'Premium', 'Runway Gen-4 Turbo: the highest quality', 'premium', 'second', 300, 2);
insert into video.tier_deployments (tier_key, position, deployment_id) values
  ('economy', 0, 'replicate/nano-banana'),
  ('economy', 1, 'did/talks'),
  ('balanced', 0, 'replicate/veo-3'),
  ('balanced', 1, 'did/talks'),
  ('premium', 0, 'runway/gen4-turbo'),
  ('premium', 1, 'replicate/veo-3');
-- ₹0.039 an image, ₹0.15 and ₹0.20 a second; USD and credits at ₹85 to the dollar.
insert into video.tier_prices (tier_key, per_units, inr_minor, usd_cents, credits, effective_from) values
  ('economy', 1000, 3900, 46, 46, '2026-01-01'),
  ('balanced', 100, 1500, 18, 18, '2026-01-01'),
  ('premium', 100, 2000, 24, 24, '2026-01-01');

alter table video.tiers enable row level security;
alter table video.tier_deployments enable row level security;
alter table video.tier_prices enable row level security;
revoke all on video.tiers, video.tier_deployments, video.tier_prices from anon, authenticated;
grant all on video.tiers, video.tier_deployments, video.tier_prices to service_role;
grant select on video.tiers, video.tier_deployments, video.tier_prices to authenticated;
create policy "signed-in users read enabled tiers" on video.tiers for select to authenticated using (enabled);
create policy "signed-in users read tier chains" on video.tier_deployments for select to authenticated using (true);
create policy "signed-in users read tier prices" on video.tier_prices for select to authenticated using (true);

-- ---------------------------------------------------------------------------
-- Quotes: the cost calculator and the reservation read the same rows
-- ---------------------------------------------------------------------------

-- Amounts for some seconds at one price row, each rounded up (as the gateway rounds credits).
create or replace function private.video_price_amounts(p_price_id uuid, p_seconds numeric,
  out inr_minor bigint, out usd_cents bigint, out credits bigint)
language sql stable security definer
set search_path = ''
as $$
  select ceil(p_seconds * p.inr_minor / p.per_units)::bigint, ceil(p_seconds * p.usd_cents / p.per_units)::bigint,
         ceil(p_seconds * p.credits / p.per_units)::bigint
  from video.tier_prices p where p.id = p_price_id
$$;
revoke all on function private.video_price_amounts(uuid, numeric) from public;

/*
 * What `p_seconds` of a tier cost now: INR (paise), USD (cents) and credits, with the price row
 * used. The cost calculator shows it; a job is reserved for exactly the quote of its estimated
 * seconds and settled at the same row's rate on the seconds the provider reports.
 */
create or replace function video.quote(p_tier text, p_seconds numeric)
returns table (tier text, unit text, seconds numeric, inr_minor bigint, usd_cents bigint, credits bigint,
               price_id uuid, max_seconds int)
language plpgsql stable security definer
set search_path = ''
as $$
declare
  v_tier video.tiers;
  v_price uuid;
begin
  select * into v_tier from video.tiers t where t.key = p_tier and t.enabled;
  if not found then
    raise exception 'no tier "%"', p_tier using errcode = '22023';
  end if;
  if p_seconds is null or p_seconds <= 0 or p_seconds > v_tier.max_seconds then
    raise exception 'the % tier makes videos of up to % seconds', p_tier, v_tier.max_seconds using errcode = '22023';
  end if;
  select p.id into v_price from video.tier_prices p
  where p.tier_key = p_tier and p.effective_from <= now() order by p.effective_from desc limit 1;
  if v_price is null then
    raise exception 'the % tier has no price yet', p_tier using errcode = '22023';
  end if;
  return query
    select v_tier.key, v_tier.unit, p_seconds, a.inr_minor, a.usd_cents, a.credits, v_price, v_tier.max_seconds
    from private.video_price_amounts(v_price, p_seconds) a;
end
$$;
comment on function video.quote(text, numeric) is 'The cost of N seconds of a tier now: INR (paise), USD (cents) and credits, and the price row; backs the cost calculator and the reservation.';
revoke all on function video.quote(text, numeric) from public, anon;
grant execute on function video.quote(text, numeric) to authenticated, service_role;

-- ---------------------------------------------------------------------------
-- Jobs
-- ---------------------------------------------------------------------------

create table video.jobs (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null references public.orgs (id) on delete cascade,
  user_id uuid references auth.users (id) on delete set null,
  tier text not null references video.tiers (key) on update cascade,
  photo_id uuid references video.uploads (id) on delete set null,
  audio_id uuid references video.uploads (id) on delete set null,
  title text check (length(title) between 1 and 100),
  script jsonb,
  ratio text not null default '9:16' check (ratio in ('16:9', '9:16', '1:1', '4:5')),
  resolution text not null default '720p' check (resolution in ('480p', '720p', '1080p')),
  est_seconds numeric not null check (est_seconds > 0),
  price_id uuid not null references video.tier_prices (id),
  quoted_credits bigint not null check (quoted_credits >= 0),
  quoted_inr_minor bigint not null check (quoted_inr_minor >= 0),
  quoted_usd_cents bigint not null check (quoted_usd_cents >= 0),
  status text not null default 'queued' check (status in ('queued', 'validating', 'rejected', 'reserved', 'submitting', 'processing',
    'unknown', 'storing', 'completed', 'failed_attempt', 'failed', 'canceled')),
  attempt int not null default 0 check (attempt >= 0),
  run int not null default 0 check (run >= 0),
  attempts_before int not null default 0 check (attempts_before >= 0),
  ai_job_id uuid references ai.jobs (id) on delete set null,
  progress int not null default 0 check (progress between 0 and 100),
  progress_message text,
  error jsonb,
  output jsonb,
  output_seconds numeric check (output_seconds >= 0),
  charged_credits bigint check (charged_credits >= 0),
  charged_inr_minor bigint check (charged_inr_minor >= 0),
  charged_usd_cents bigint check (charged_usd_cents >= 0),
  idempotency_key text check (length(idempotency_key) between 1 and 200),
  created_at timestamptz not null default now(),
  started_at timestamptz,
  finished_at timestamptz,
  updated_at timestamptz not null default now(),
  -- One or the other when made (video.create_job); the voice track may later be purged.
  check (script is null or audio_id is null)
);
create index jobs_org_idx on video.jobs (org_id, created_at desc);
create index jobs_user_idx on video.jobs (user_id, created_at desc);
create index jobs_photo_idx on video.jobs (photo_id);
create index jobs_audio_idx on video.jobs (audio_id);
create index jobs_price_idx on video.jobs (price_id);
create index jobs_tier_idx on video.jobs (tier);
create unique index jobs_ai_job_idx on video.jobs (ai_job_id);
create unique index jobs_idempotency_idx on video.jobs (org_id, idempotency_key) where idempotency_key is not null;
alter table video.jobs set (fillfactor = 80);
comment on table video.jobs is 'A talking video: photo, script (or voice track), tier and its quote, and its state. Until the worker admits it (queued, validating, rejected) the state is the module''s; from reserved on it is derived from its AI job and attempts (trigger on ai.jobs). Every change goes live as event video.job on user:<id>.';
comment on column video.jobs.script is '{"text", "voice", "language"?}: what the face says (spoken by the provider); null when a voice track (audio_id) is used.';
comment on column video.jobs.est_seconds is 'Estimated length: the voice track''s, or the script at 12 characters a second (rounded up); what is reserved.';
comment on column video.jobs.price_id is 'The tier price in force when the job was made: its quote, reservation and settle all use it.';
comment on column video.jobs.quoted_credits is 'video.quote(tier, est_seconds).credits: what the reservation holds.';
comment on column video.jobs.status is 'queued → validating → rejected (free) | reserved → submitting → processing | unknown (a submit timed out: read back by our key, never resent) → storing → completed; failed_attempt → submitting (next attempt) | failed (voided); canceled (voided).';
comment on column video.jobs.attempt is 'Provider calls made so far, over every run (the current attempt''s number).';
comment on column video.jobs.run is 'AI jobs admitted for it: 1, plus one per retry after a failure.';
comment on column video.jobs.attempts_before is 'Provider calls of earlier runs (so attempts number on across retries).';
comment on column video.jobs.ai_job_id is 'The current run''s AI gateway job.';
comment on column video.jobs.error is '{code, message}: why it was rejected or failed (refused: the provider refused the input; no other provider was asked).';
comment on column video.jobs.output is 'The finished file in Storage: {bucket, path, mime_type, bytes, sha256}; downloads use signed URLs.';
comment on column video.jobs.output_seconds is 'The length the provider reported: what was settled.';
comment on column video.jobs.charged_credits is 'Credits settled (the reported seconds at the quoted price, never more than was held).';
comment on column video.jobs.idempotency_key is 'The client''s Idempotency-Key: the same key again returns this job.';

create table video.job_runs (
  job_id uuid not null references video.jobs (id) on delete cascade,
  run int not null check (run > 0),
  org_id uuid not null references public.orgs (id) on delete cascade,
  ai_job_id uuid not null unique references ai.jobs (id) on delete cascade,
  created_at timestamptz not null default now(),
  primary key (job_id, run)
);
create index job_runs_org_idx on video.job_runs (org_id);
comment on table video.job_runs is 'Each AI gateway job a video job ran: the first, and one per retry after a failure.';

create trigger jobs_updated_at before update on video.jobs for each row execute function private.set_updated_at();

insert into notify.event_types (type, module, description, sensitive) values
  ('video.job_completed', 'video', 'A talking video is stored and its credits settled', false),
  ('video.job_failed', 'video', 'A talking video failed, was refused or rejected; nothing was charged for it', false);

-- The product state of a running AI job, from its latest main attempt. 'storing the output' is
-- the message the gateway's poll sets while it copies a finished task into Storage (ai/async.ts).
create or replace function private.video_job_state(p_job ai.jobs) returns text
language sql stable security definer
set search_path = ''
as $$
  select case
    when p_job.status = 'queued' then 'reserved'
    when p_job.status = 'succeeded' then 'completed'
    when p_job.status = 'canceled' then 'canceled'
    when p_job.status = 'failed' then case when p_job.error ->> 'code' = 'input_flagged' then 'rejected' else 'failed' end
    else coalesce((
      select case a.status
               when 'pending' then 'submitting'
               when 'unknown' then 'unknown'
               when 'submitted' then case when p_job.progress_message = 'storing the output' then 'storing' else 'processing' end
               when 'succeeded' then 'storing'
               else 'failed_attempt'
             end
      from ai.attempts a where a.job_id = p_job.id and a.purpose = 'main' order by a.attempt_no desc limit 1), 'reserved')
  end
$$;
revoke all on function private.video_job_state(ai.jobs) from public;

-- Follows a video job's current AI job: state, attempt, progress, and on the end the output,
-- the settled credits and their INR/USD at the quoted price, and the outbox event.
create or replace function private.video_follow_ai_job() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  v video.jobs;
  v_state text := private.video_job_state(new);
  v_ended boolean := new.status in ('succeeded', 'failed', 'canceled');
  v_seconds numeric := (new.output ->> 'duration_seconds')::numeric;
  v_money record;
begin
  select * into v from video.jobs where ai_job_id = new.id for update;
  -- Ended, or queued again for a retry (this AI job is then a past run): nothing to follow.
  if not found or v.status in ('completed', 'failed', 'rejected', 'canceled', 'queued', 'validating') then
    return null;
  end if;
  -- Money follows the credits: the reported seconds, never more than were held; nothing unless it succeeded.
  select * into v_money from private.video_price_amounts(v.price_id,
    case when new.status = 'succeeded' then least(coalesce(v_seconds, v.est_seconds), v.est_seconds) else 0 end);
  -- One update, so the broadcast of the end carries the output and the charge.
  update video.jobs
     set status = v_state,
         attempt = v.attempts_before + (select count(*) from ai.attempts a where a.job_id = new.id and a.purpose = 'main'),
         progress = case when v_state = 'completed' then 100 else greatest(v.progress, new.progress) end,
         progress_message = new.progress_message,
         started_at = coalesce(v.started_at, new.started_at),
         output = case when new.status = 'succeeded' then new.output -> 'files' -> 0 end,
         output_seconds = case when new.status = 'succeeded' then v_seconds end,
         error = case when new.status in ('failed', 'canceled')
                      then jsonb_build_object('code', new.error ->> 'code', 'message', new.error ->> 'message') end,
         charged_credits = case when v_ended then coalesce(new.settled_credits, 0) end,
         charged_inr_minor = case when v_ended then v_money.inr_minor end,
         charged_usd_cents = case when v_ended then v_money.usd_cents end,
         finished_at = case when v_ended then new.finished_at end
   where id = v.id;
  if new.status = 'succeeded' then
    perform private.emit_event(v.org_id, 'video.job_completed', 'video_job', v.id::text,
      jsonb_build_object('job_id', v.id, 'user_id', v.user_id, 'tier', v.tier, 'seconds', v_seconds, 'credits', new.settled_credits,
                         'error', null));
  elsif new.status = 'failed' then
    perform private.emit_event(v.org_id, 'video.job_failed', 'video_job', v.id::text,
      jsonb_build_object('job_id', v.id, 'user_id', v.user_id, 'tier', v.tier, 'seconds', null, 'credits', 0,
                         'error', new.error ->> 'code'));
  end if;
  return null;
end
$$;
revoke all on function private.video_follow_ai_job() from public;
create trigger video_jobs_follow after update on ai.jobs
  for each row when (new.source = 'video' and new.modality = 'video')
  execute function private.video_follow_ai_job();

-- Status and progress go live on the owner's channel.
create or replace function private.video_broadcast_job() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  if tg_op = 'UPDATE' and (new.status, new.progress, new.progress_message, new.attempt)
                          is not distinct from (old.status, old.progress, old.progress_message, old.attempt) then
    return null;
  end if;
  if new.user_id is not null then
    perform realtime.send(
      jsonb_build_object('job_id', new.id, 'status', new.status, 'attempt', new.attempt, 'progress', new.progress,
                         'message', new.progress_message, 'error', new.error, 'credits', new.charged_credits),
      'video.job', 'user:' || new.user_id, true);
  end if;
  return null;
end
$$;
revoke all on function private.video_broadcast_job() from public;
create trigger jobs_broadcast after insert or update on video.jobs for each row execute function private.video_broadcast_job();

alter table video.jobs enable row level security;
alter table video.job_runs enable row level security;
revoke all on video.jobs, video.job_runs from anon, authenticated;
grant all on video.jobs, video.job_runs to service_role;
grant select on video.jobs, video.job_runs to authenticated;
-- Own jobs, or all of an org's for billing managers (as ai.jobs). Writes go through the RPCs.
create policy "owners and billing managers read video jobs" on video.jobs
  for select to authenticated
  using (
    (user_id = (select auth.uid()) and org_id in (select private.accessible_org_ids()))
    or org_id in (select private.org_ids_with_permission('billing.manage'))
  );
create policy "readers of a job read its runs" on video.job_runs
  for select to authenticated
  using (job_id in (select j.id from video.jobs j));

-- ---------------------------------------------------------------------------
-- RPCs
-- ---------------------------------------------------------------------------

-- A job the caller may act on (its owner, a billing manager of its org, or the worker), locked; else PT404.
create or replace function private.video_job_for_caller(p_job_id uuid) returns video.jobs
language plpgsql security definer
set search_path = ''
as $$
declare
  v video.jobs;
begin
  select * into v from video.jobs where id = p_job_id for update;
  if not found or not coalesce(
       (v.user_id = auth.uid() and v.org_id in (select private.accessible_org_ids()))
       or private.has_permission(v.org_id, 'billing.manage')
       or coalesce(auth.role(), 'service_role') = 'service_role', false) then
    raise exception 'video job not found' using errcode = 'PT404';
  end if;
  return v;
end
$$;
revoke all on function private.video_job_for_caller(uuid) from public;

-- The org's in-progress jobs, against the plan's concurrency limit (PT429).
create or replace function private.video_assert_concurrency(p_org_id uuid) returns void
language plpgsql security definer
set search_path = ''
as $$
declare
  v_limit bigint := billing.limit_of(p_org_id, 'video_concurrent_jobs');
begin
  if v_limit is not null and (select count(*) from video.jobs j where j.org_id = p_org_id
       and j.status not in ('completed', 'failed', 'rejected', 'canceled')) >= v_limit then
    raise exception '% talking videos are already in progress in this org (the plan''s limit); wait for one to finish', v_limit
      using errcode = 'PT429';
  end if;
end
$$;
revoke all on function private.video_assert_concurrency(uuid) from public;

/*
 * Creates a talking video for the caller (a member with ai.use), queued for the worker, which
 * validates it and holds its credits. Checked here, before anything is written (400, 402, 409,
 * 429): the tier and length, the photo (and voice track) passed validation, the plan's limits
 * (videos a day, longest video, in progress at once), the hourly generation bucket, and that the
 * org has the quoted credits available now. The same idempotency key returns the first job.
 * Under one lock per org, so concurrent creations count each other.
 */
create or replace function video.create_job(
  p_org_id uuid, p_tier text, p_photo_id uuid, p_script jsonb default null, p_audio_id uuid default null,
  p_title text default null, p_ratio text default '9:16', p_resolution text default '720p', p_idempotency_key text default null)
returns table (job_id uuid, created boolean)
language plpgsql security definer
set search_path = ''
as $$
declare
  v_uid uuid := auth.uid();
  v_existing video.jobs;
  v_photo video.uploads;
  v_audio video.uploads;
  v_seconds numeric;
  v_quote record;
  v_limit bigint;
  v_available bigint;
  v_id uuid;
begin
  if v_uid is null then
    raise exception 'talking videos are made by signed-in members' using errcode = '42501';
  end if;
  if not private.has_permission(p_org_id, 'ai.use') then
    raise exception 'you need ai.use in this org to make talking videos' using errcode = '42501';
  end if;
  perform pg_advisory_xact_lock(hashtextextended('video.jobs:' || p_org_id, 0));
  if p_idempotency_key is not null then
    select * into v_existing from video.jobs j where j.org_id = p_org_id and j.idempotency_key = p_idempotency_key;
    if found then
      if v_existing.user_id is distinct from v_uid then
        raise exception 'this Idempotency-Key was already used in this org by someone else; send a fresh one' using errcode = '23505';
      end if;
      return query select v_existing.id, false;
      return;
    end if;
  end if;

  select * into v_photo from video.uploads u where u.id = p_photo_id and u.org_id = p_org_id and u.deleted_at is null;
  if not found or v_photo.kind is distinct from 'photo' and v_photo.status = 'passed' then
    raise exception 'no photo % in this org', p_photo_id using errcode = '22023';
  end if;
  if v_photo.status <> 'passed' then
    raise exception 'the photo has not passed validation (%)', coalesce(v_photo.reject_reason, v_photo.status) using errcode = 'PT409';
  end if;
  if (p_script is null) = (p_audio_id is null) then
    raise exception 'give a script or a voice track (audio_id), not both' using errcode = '22023';
  end if;
  if p_audio_id is not null then
    select * into v_audio from video.uploads u where u.id = p_audio_id and u.org_id = p_org_id and u.deleted_at is null;
    if not found or (v_audio.status = 'passed' and v_audio.kind <> 'audio') then
      raise exception 'no voice track % in this org', p_audio_id using errcode = '22023';
    end if;
    if v_audio.status <> 'passed' then
      raise exception 'the voice track has not passed validation (%)', coalesce(v_audio.reject_reason, v_audio.status) using errcode = 'PT409';
    end if;
    v_seconds := ceil(v_audio.duration_ms / 1000.0);
  else
    v_seconds := greatest(1, ceil(char_length(p_script ->> 'text') / 12.0));
  end if;

  select * into v_quote from video.quote(p_tier, v_seconds);
  v_limit := billing.limit_of(p_org_id, 'video_max_seconds');
  if v_limit is not null and v_seconds > v_limit then
    raise exception 'this video would last about % seconds; the plan makes videos of up to % seconds', v_seconds, v_limit
      using errcode = 'PT402';
  end if;
  v_limit := billing.limit_of(p_org_id, 'video_jobs_per_day');
  if v_limit is not null and (select count(*) from video.jobs j where j.org_id = p_org_id
       and j.created_at >= date_trunc('day', now() at time zone 'UTC') at time zone 'UTC') >= v_limit then
    raise exception 'the plan allows % talking videos a day; this org has made them all today', v_limit using errcode = 'PT402';
  end if;
  perform private.video_assert_concurrency(p_org_id);
  perform private.ai_take_token(p_org_id, 'video:' || v_uid, billing.limit_of(p_org_id, 'video_generations_per_hour'),
                                interval '1 hour', 'video generations per hour');
  select coalesce(a.balance - a.reserved, 0) into v_available from billing.credit_accounts a where a.org_id = p_org_id;
  if coalesce(v_available, 0) < v_quote.credits then
    raise exception 'insufficient credits: % available, % needed', coalesce(v_available, 0), v_quote.credits using errcode = 'PT402';
  end if;

  insert into video.jobs (org_id, user_id, tier, photo_id, audio_id, title, script, ratio, resolution, est_seconds, price_id,
                          quoted_credits, quoted_inr_minor, quoted_usd_cents, idempotency_key)
  values (p_org_id, v_uid, p_tier, p_photo_id, p_audio_id, p_title, p_script, p_ratio, p_resolution, v_seconds, v_quote.price_id,
          v_quote.credits, v_quote.inr_minor, v_quote.usd_cents, p_idempotency_key)
  returning id into v_id;
  return query select v_id, true;
end
$$;
comment on function video.create_job(uuid, text, uuid, jsonb, uuid, text, text, text, text) is 'Creates a queued talking video for the caller after checking the tier, the photo, the plan''s limits and the credits (the api queues its start; see docs/video.md).';

/*
 * Cancels a job that has not ended: before its AI job exists it simply ends; after, the AI job is
 * canceled (its credits released at once; the gateway's poll cancels the task at the provider
 * where it can). The owner or a billing manager may; a job that ended is returned as it is.
 */
create or replace function video.cancel_job(p_job_id uuid) returns video.jobs
language plpgsql security definer
set search_path = ''
as $$
declare
  v video.jobs := private.video_job_for_caller(p_job_id);
begin
  if v.status in ('completed', 'failed', 'rejected', 'canceled') then
    return v;
  end if;
  if v.ai_job_id is not null and v.status not in ('queued', 'validating') then
    perform private.ai_finish_job(v.ai_job_id, 'canceled', null, jsonb_build_object('code', 'canceled', 'message', 'canceled by the user'));
  end if;
  update video.jobs set status = 'canceled', finished_at = coalesce(finished_at, now()),
                        error = coalesce(error, jsonb_build_object('code', 'canceled', 'message', 'canceled by the user')),
                        charged_credits = coalesce(charged_credits, 0), charged_inr_minor = coalesce(charged_inr_minor, 0),
                        charged_usd_cents = coalesce(charged_usd_cents, 0)
   where id = p_job_id and status <> 'canceled'
  returning * into v;
  return coalesce(v, (select j from video.jobs j where j.id = p_job_id));
end
$$;
comment on function video.cancel_job(uuid) is 'Cancels a talking video that has not ended; its credits are released and the provider is asked to stop.';

/*
 * A user's retry of a failed job: the same job queued again, to run as a fresh attempt (a new AI
 * job, since the failed one's reservation was voided; so nothing is charged twice). A provider's
 * refusal is final: the same input would be refused again. Counts against the concurrency limit.
 */
create or replace function video.retry_job(p_job_id uuid) returns video.jobs
language plpgsql security definer
set search_path = ''
as $$
declare
  v video.jobs := private.video_job_for_caller(p_job_id);
begin
  if v.status <> 'failed' then
    raise exception 'only a failed job can be retried (this one is %)', v.status using errcode = 'PT409';
  end if;
  if v.error ->> 'code' = 'refused' then
    raise exception 'the provider refused this photo or script; change them and start a new video' using errcode = 'PT409';
  end if;
  perform private.video_assert_concurrency(v.org_id);
  update video.jobs set status = 'queued', error = null, progress = 0, progress_message = 'queued for a retry', finished_at = null,
                        charged_credits = null, charged_inr_minor = null, charged_usd_cents = null
   where id = p_job_id
  returning * into v;
  return v;
end
$$;
comment on function video.retry_job(uuid) is 'Queues a failed talking video again as a new attempt (the api queues its start); never a second charge.';

-- The provider calls of a job over all its runs, without costs (ai.attempts is for billing managers).
create or replace function video.job_attempts(p_job_id uuid)
returns table (attempt int, run int, kind text, deployment_id text, provider_id text, status text, error_class text,
               error_code text, started_at timestamptz, finished_at timestamptz)
language sql stable security definer
set search_path = ''
as $$
  select (row_number() over (order by r.run, a.attempt_no))::int, r.run, a.kind, a.deployment_id, a.provider_id, a.status,
         a.error_class, a.error_code, a.started_at, a.finished_at
  from video.jobs j
  join video.job_runs r on r.job_id = j.id
  join ai.attempts a on a.job_id = r.ai_job_id and a.purpose = 'main'
  where j.id = p_job_id
    and ((j.user_id = auth.uid() and j.org_id in (select private.accessible_org_ids()))
         or private.has_permission(j.org_id, 'billing.manage')
         or coalesce(auth.role(), 'service_role') = 'service_role')
  order by r.run, a.attempt_no
$$;
comment on function video.job_attempts(uuid) is 'A talking video''s provider calls over all its runs (number, provider, outcome), for its owner or a billing manager.';

revoke all on function video.create_job(uuid, text, uuid, jsonb, uuid, text, text, text, text), video.cancel_job(uuid),
  video.retry_job(uuid), video.job_attempts(uuid) from public, anon;
grant execute on function video.create_job(uuid, text, uuid, jsonb, uuid, text, text, text, text), video.cancel_job(uuid),
  video.retry_job(uuid), video.job_attempts(uuid) to authenticated, service_role;

-- Column comments for Studio.
comment on column video.tiers.name is 'Shown in pickers.';
comment on column video.tiers.description is 'Shown in pickers and the cost calculator.';
comment on column video.tiers.created_at is 'When the tier was added.';
comment on column video.tiers.updated_at is 'Last change (set by trigger).';
comment on column video.tier_deployments.tier_key is 'The tier.';
comment on column video.tier_deployments.deployment_id is 'The AI gateway deployment at this position.';
comment on column video.tier_prices.tier_key is 'The tier priced.';
comment on column video.tier_prices.created_at is 'When the row was added (effective_from says when it applies).';
comment on column video.jobs.org_id is 'The org whose credits it spends.';
comment on column video.jobs.user_id is 'The member who made it; its status goes to user:<id>.';
comment on column video.jobs.tier is 'The quality tier.';
comment on column video.jobs.photo_id is 'The photo (an upload that passed).';
comment on column video.jobs.audio_id is 'The voice track, when the face says an uploaded recording instead of a script.';
comment on column video.jobs.title is 'A name for the video, shown in lists and given to the downloaded file.';
comment on column video.jobs.ratio is 'Aspect ratio asked of the provider.';
comment on column video.jobs.resolution is 'Resolution asked of the provider.';
comment on column video.jobs.quoted_inr_minor is 'The quote in paise.';
comment on column video.jobs.quoted_usd_cents is 'The quote in US cents.';
comment on column video.jobs.progress is 'Percent done (from the provider where it reports it).';
comment on column video.jobs.progress_message is 'What is happening now (the gateway''s message).';
comment on column video.jobs.charged_inr_minor is 'The settled seconds in paise at the quoted price.';
comment on column video.jobs.charged_usd_cents is 'The settled seconds in US cents at the quoted price.';
comment on column video.jobs.created_at is 'When it was made.';
comment on column video.jobs.started_at is 'When its first provider call started.';
comment on column video.jobs.finished_at is 'When it ended.';
comment on column video.jobs.updated_at is 'Last change (set by trigger).';
comment on column video.job_runs.run is '1 for the first AI job, then one more per retry.';
comment on column video.job_runs.ai_job_id is 'The AI gateway job of this run.';
