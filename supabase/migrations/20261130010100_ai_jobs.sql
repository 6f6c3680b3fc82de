-- AI gateway, part 2: jobs, attempts, batches and presets; admission (permission, rate limit,
-- worst-case reservation, spend caps) in one transaction; settling from the attempts; live
-- status on Realtime; events; usage views.
--
-- Money path: admission reserves the worst case with billing.reserve_credits keyed by the job
-- id; the worker settles once, from the attempt rows, with billing.settle_credits (which
-- releases the rest); a failed or canceled job voids. So a retried or crashed worker never
-- charges twice, and a fallback never charges for the provider that failed.

create table ai.batches (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null references public.orgs (id) on delete cascade,
  user_id uuid references auth.users (id) on delete set null,
  api_key_id uuid references public.api_keys (id) on delete set null,
  label text check (length(label) <= 200),
  total int not null check (total > 0),
  canceled_at timestamptz,
  created_at timestamptz not null default now()
);
create index batches_org_idx on ai.batches (org_id, created_at desc);
create index batches_user_idx on ai.batches (user_id);
create index batches_api_key_idx on ai.batches (api_key_id);
comment on table ai.batches is 'N AI jobs submitted together: listed, followed and canceled as one. Its progress is the sum of its jobs'' (ai.batch_progress).';

create table ai.jobs (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null references public.orgs (id) on delete cascade,
  user_id uuid references auth.users (id) on delete set null,
  api_key_id uuid references public.api_keys (id) on delete set null,
  batch_id uuid references ai.batches (id) on delete cascade,
  source text not null check (source ~ '^[a-z][a-z0-9_]{1,31}$'),
  idempotency_key text check (length(idempotency_key) between 1 and 200),
  modality text not null check (modality in ('text', 'image', 'video', 'audio', 'embedding', 'moderation')),
  tier text check (tier in ('economy', 'balanced', 'premium')),
  model_id text,
  input jsonb not null,
  route jsonb not null,
  status text not null default 'queued' check (status in ('queued', 'running', 'succeeded', 'failed', 'canceled')),
  progress int not null default 0 check (progress between 0 and 100),
  progress_message text,
  output jsonb,
  error jsonb,
  reservation_id uuid,
  reserved_credits bigint not null check (reserved_credits > 0),
  settled_credits bigint check (settled_credits >= 0),
  provider_cost_micros bigint check (provider_cost_micros >= 0),
  deployment_id text,
  created_at timestamptz not null default now(),
  started_at timestamptz,
  finished_at timestamptz,
  updated_at timestamptz not null default now(),
  check ((tier is null) <> (model_id is null))
);
create index jobs_org_idx on ai.jobs (org_id, created_at desc);
create index jobs_user_idx on ai.jobs (user_id, created_at desc);
create index jobs_api_key_idx on ai.jobs (api_key_id);
create index jobs_batch_idx on ai.jobs (batch_id);
create unique index jobs_idempotency_idx on ai.jobs (org_id, idempotency_key) where idempotency_key is not null;
-- Monthly spend: what a month's jobs hold or spent, per org and per member.
create index jobs_spend_idx on ai.jobs (org_id, created_at) include (user_id, api_key_id, status, reserved_credits, settled_credits);
comment on table ai.jobs is 'One AI request: its input, the route it was admitted with (deployments and the prices in force at submission), its live status and progress, its output (text inline; files as Storage paths in ai-outputs), and what it reserved and settled.';
comment on column ai.jobs.source is 'Who submitted it: api (POST /api/ai/jobs), openai (the OpenAI-compatible endpoint), or a product module''s name.';
comment on column ai.jobs.idempotency_key is 'The client''s Idempotency-Key: a second submit with the same key returns the first job.';
comment on column ai.jobs.route is 'The deployments the router may use, in order, each with the price rows in force at submission (what the job is priced from): {"main": [...], "moderation": [...]?, "enhance": [...]?}.';
comment on column ai.jobs.output is 'Text jobs: {text, finish_reason, usage}. File jobs: {files: [{path, mime_type, bytes, sha256}]} in the ai-outputs bucket.';
comment on column ai.jobs.error is '{code, message, class} when failed: the last attempt''s error, or why nothing could run.';
comment on column ai.jobs.reserved_credits is 'The worst case held at admission (max output x the highest rate in the route, n x image price, seconds x video price).';
comment on column ai.jobs.settled_credits is 'What was charged: the succeeded attempt''s credits, never more than reserved_credits.';

create table ai.attempts (
  id uuid primary key default gen_random_uuid(),
  job_id uuid not null references ai.jobs (id) on delete cascade,
  org_id uuid not null references public.orgs (id) on delete cascade,
  attempt_no int not null check (attempt_no > 0),
  purpose text not null default 'main' check (purpose in ('main', 'moderation', 'enhance')),
  kind text not null check (kind in ('initial', 'retry', 'fallback')),
  deployment_id text not null,
  provider_id text not null,
  provider_model text not null,
  status text not null default 'pending'
    check (status in ('pending', 'submitted', 'unknown', 'succeeded', 'failed', 'refused', 'canceled', 'abandoned')),
  error_class text,
  error_code text,
  error_message text,
  http_status int,
  provider_request_id text,
  progress real check (progress between 0 and 1),
  units jsonb not null default '{}',
  provider_cost_micros bigint not null default 0 check (provider_cost_micros >= 0),
  credits bigint not null default 0 check (credits >= 0),
  billed boolean not null default false,
  latency_ms int,
  started_at timestamptz not null default now(),
  finished_at timestamptz,
  unique (job_id, attempt_no)
);
create index attempts_org_idx on ai.attempts (org_id, started_at desc);
create index attempts_provider_request_idx on ai.attempts (provider_id, provider_request_id) where provider_request_id is not null;
create index attempts_open_async_idx on ai.attempts (started_at) where status in ('submitted', 'unknown');
comment on table ai.attempts is 'Every provider call a job made, written before the call and closed after it: which deployment, why (initial, retry, fallback), the outcome, latency, the provider''s request id, units, provider cost and credits. Failed calls the provider billed are kept with billed = true.';
comment on column ai.attempts.status is 'pending (call in flight), submitted (async task accepted), unknown (submit timed out: resolved by reading the provider with our key, never by submitting again), succeeded, failed, refused (content policy), canceled, abandoned (the worker died mid-call).';
comment on column ai.attempts.units is 'What the provider reported: {"input_token": n, "output_token": n, "cached_input_token": n, "reasoning_token": n, "image": n, "video_second": s, "character": n, "call": 1}.';
comment on column ai.attempts.credits is 'Credits for this attempt at the job''s admitted prices. Only a succeeded (or, for a cut stream, delivered) attempt is charged to the org.';
comment on column ai.attempts.billed is 'The provider charged for this call (a success, or a failure that still consumed input, such as a cut stream).';
comment on column ai.attempts.provider_request_id is 'The provider''s request id, or its task id for async calls (what webhooks and polls are matched on).';

create table ai.presets (
  key text primary key check (key ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
  kind text not null check (kind in ('style', 'prompt_template')),
  modality text not null check (modality in ('text', 'image', 'video', 'audio')),
  name text not null check (length(name) between 1 and 100),
  body jsonb not null,
  created_at timestamptz not null default now()
);
comment on table ai.presets is 'Global style presets (image and video: a prompt suffix, a negative prompt, parameters) and prompt templates (text: a template with {{variables}}), available to every org. Orgs add their own in ai.org_presets.';
comment on column ai.presets.body is 'style: {"prompt_suffix", "negative_prompt"?, "params"?}. prompt_template: {"template", "system"?}.';

create table ai.org_presets (
  org_id uuid not null references public.orgs (id) on delete cascade,
  key text not null check (key ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
  kind text not null check (kind in ('style', 'prompt_template')),
  modality text not null check (modality in ('text', 'image', 'video', 'audio')),
  name text not null check (length(name) between 1 and 100),
  body jsonb not null,
  created_by uuid references auth.users (id) on delete set null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (org_id, key)
);
create index org_presets_created_by_idx on ai.org_presets (created_by);
comment on table ai.org_presets is 'An org''s own style presets and prompt templates; a key here shadows the global preset of the same key for that org.';

create trigger jobs_updated_at before update on ai.jobs for each row execute function private.set_updated_at();
create trigger org_presets_updated_at before update on ai.org_presets for each row execute function private.set_updated_at();

insert into ai.presets (key, kind, modality, name, body) values
  ('photoreal', 'style', 'image', 'Photorealistic', '{"prompt_suffix": "photorealistic, natural light, 35mm, high detail", "negative_prompt": "cartoon, illustration, text, watermark"}'),
  ('flat-illustration', 'style', 'image', 'Flat illustration', '{"prompt_suffix": "flat vector illustration, bold shapes, limited palette", "negative_prompt": "photo, 3d render, noise"}'),
  ('cinematic', 'style', 'video', 'Cinematic', '{"prompt_suffix": "cinematic lighting, shallow depth of field, smooth camera"}'),
  ('marketing-copy', 'prompt_template', 'text', 'Marketing copy', '{"system": "You write concise, persuasive marketing copy.", "template": "Write {{format}} about {{topic}} for {{audience}} in a {{tone}} tone."}'),
  ('summarize', 'prompt_template', 'text', 'Summarize', '{"template": "Summarize the following in {{length}}:\n\n{{text}}"}'),
  ('enhance-prompt', 'prompt_template', 'text', 'Enhance an image prompt', '{"system": "You rewrite image prompts to be specific and visual. Answer with the prompt only.", "template": "Improve this prompt: {{prompt}}"}');

-- New event types, through the outbox (webhooks, org channel, notifications).
insert into notify.event_types (type, module, description, sensitive) values
  ('ai.job_succeeded', 'ai', 'An AI job finished and its output is stored', false),
  ('ai.job_failed', 'ai', 'An AI job failed or was refused; nothing was charged for it', false);

-- ---------------------------------------------------------------------------
-- Routing: the deployments a request may use, with the prices in force
-- ---------------------------------------------------------------------------

-- The units a modality must be priced in for a deployment to be routable (fail closed).
create or replace function private.ai_required_units(p_modality text) returns text[]
language sql immutable
set search_path = ''
as $$
  select case p_modality
    when 'text' then array['input_token', 'output_token']
    when 'embedding' then array['input_token']
    when 'image' then array['image']
    when 'video' then array['video_second']
    when 'audio' then array['character']
    when 'moderation' then array['call']
  end
$$;

-- The route for a request: by model name (its deployments by priority) or by tier (the org's
-- own route, else the default). Only enabled, fully priced deployments of enabled providers;
-- each with its price rows in force at p_at. Policy and plan checks are the caller's.
create or replace function private.ai_route(p_org_id uuid, p_modality text, p_tier text, p_model text, p_at timestamptz default now())
returns table (
  deployment_id text, model_id text, provider_id text, provider_kind text, provider_model text,
  context_window int, max_output int, policy_alternative boolean, prices jsonb)
language sql stable security definer
set search_path = ''
as $$
  with chain as (
    select d.id, ord
    from (
      select r.deployment_id as id, r.position as ord from ai.org_routes r
      where p_model is null and r.org_id = p_org_id and r.modality = p_modality and r.tier = p_tier
      union all
      select t.deployment_id, t.position from ai.tiers t
      where p_model is null and t.modality = p_modality and t.tier = p_tier
        and not exists (select 1 from ai.org_routes r where r.org_id = p_org_id and r.modality = p_modality and r.tier = p_tier)
      union all
      select d.id, d.priority from ai.deployments d where p_model is not null and d.model_id = p_model
    ) d
  ),
  priced as (
    select c.ord, d.id, d.model_id, p.id as provider_id, p.kind, d.provider_model, m.context_window, m.max_output,
           d.policy_alternative,
           (select coalesce(jsonb_agg(jsonb_build_object(
                     'unit', x.unit, 'variant', x.variant, 'per_units', x.per_units,
                     'provider_cost_micros', x.provider_cost_micros, 'currency', x.currency, 'credits', x.credits)
                     order by x.unit, x.variant), '[]')
            from (select distinct on (pr.unit, pr.variant) pr.*
                  from ai.prices pr
                  where pr.deployment_id = d.id and pr.effective_from <= p_at
                  order by pr.unit, pr.variant, pr.effective_from desc) x) as prices
    from chain c
    join ai.deployments d on d.id = c.id and d.enabled
    join ai.models m on m.id = d.model_id and m.enabled and m.modality = p_modality
    join ai.providers p on p.id = d.provider_id and p.enabled
  )
  select id, model_id, provider_id, kind, provider_model, context_window, max_output, policy_alternative, prices
  from priced
  where (select bool_and(exists (select 1 from jsonb_array_elements(priced.prices) e where e ->> 'unit' = u))
         from unnest(private.ai_required_units(p_modality)) u)
  order by ord
$$;

-- ---------------------------------------------------------------------------
-- Rate limits: a token bucket per org and per member (or API key), refilled continuously
-- ---------------------------------------------------------------------------

create table private.ai_rate_buckets (
  org_id uuid not null references public.orgs (id) on delete cascade,
  subject text not null,
  tokens double precision not null,
  refilled_at timestamptz not null default clock_timestamp(),
  primary key (org_id, subject)
);
comment on table private.ai_rate_buckets is 'AI rate limits: one token bucket per org (subject org) and per member or API key. Capacity = the plan''s per-minute limit; it refills at capacity/60 per second.';

-- Takes one token from a bucket, or raises PT429 with the seconds until one is free.
create or replace function private.ai_take_token(p_org_id uuid, p_subject text, p_per_minute bigint) returns void
language plpgsql security definer
set search_path = ''
as $$
declare
  v_now timestamptz := clock_timestamp();
  v_rate double precision;
  v_tokens double precision;
begin
  if p_per_minute is null then
    return; -- unlimited
  end if;
  if p_per_minute <= 0 then
    raise exception 'AI is not included in this plan' using errcode = 'PT402';
  end if;
  v_rate := p_per_minute / 60.0;
  insert into private.ai_rate_buckets as b (org_id, subject, tokens, refilled_at)
  values (p_org_id, p_subject, p_per_minute, v_now)
  on conflict (org_id, subject) do update
    set tokens = least(p_per_minute::double precision,
                       b.tokens + extract(epoch from (v_now - b.refilled_at)) * v_rate),
        refilled_at = v_now
  returning tokens into v_tokens;
  if v_tokens < 1 then
    raise exception 'rate limit reached: % AI requests per minute', p_per_minute
      using errcode = 'PT429', hint = 'retry_after=' || ceil((1 - v_tokens) / v_rate)::int;
  end if;
  update private.ai_rate_buckets set tokens = tokens - 1 where org_id = p_org_id and subject = p_subject;
end
$$;

-- Provider callbacks seen, so a redelivered webhook (same webhook-id) is applied once.
create table private.ai_webhook_receipts (
  provider_id text not null,
  webhook_id text not null,
  provider_task_id text,
  received_at timestamptz not null default now(),
  primary key (provider_id, webhook_id)
);
comment on table private.ai_webhook_receipts is 'Inbound AI provider webhooks by their webhook-id: a redelivery finds its row and changes nothing. A webhook only wakes the job''s poll; the provider''s own state decides.';
alter table private.ai_webhook_receipts enable row level security;

-- ---------------------------------------------------------------------------
-- Admission: one transaction that checks, holds and records, or refuses and leaves nothing
-- ---------------------------------------------------------------------------

-- Credits a month's AI jobs hold or spent for an org (and, with p_user/p_key, one member).
create or replace function private.ai_month_spend(p_org_id uuid, p_user_id uuid default null, p_api_key_id uuid default null)
returns bigint
language sql stable security definer
set search_path = ''
as $$
  select coalesce(sum(case when j.status in ('queued', 'running') then j.reserved_credits
                           else coalesce(j.settled_credits, 0) end), 0)::bigint
  from ai.jobs j
  where j.org_id = p_org_id
    and j.created_at >= date_trunc('month', now() at time zone 'UTC') at time zone 'UTC'
    and (p_user_id is null or j.user_id = p_user_id)
    and (p_api_key_id is null or j.api_key_id = p_api_key_id)
$$;

/*
 * Admits a job. The api computes the route (private.ai_route) and the worst case from the
 * validated input; this checks what only the database can check exactly, in this order:
 * permission ai.use, policy and plan (tier, model), the rate limits, the reservation (PT402
 * when it does not fit: before any provider call), the monthly caps (under the credit
 * account's lock, so concurrent admissions cannot both squeeze in). A signed-in caller is the
 * user or API key it claims; the service role (the worker, for product modules) names them.
 */
create or replace function private.ai_admit_job(
  p_org_id uuid, p_user_id uuid, p_api_key_id uuid, p_source text, p_modality text, p_tier text, p_model text,
  p_input jsonb, p_route jsonb, p_worst_case bigint, p_idempotency_key text default null, p_batch_id uuid default null,
  p_ttl interval default interval '1 hour')
returns ai.jobs
language plpgsql security definer
set search_path = ''
as $$
declare
  v_role text := coalesce(auth.role(), 'service_role');
  v_job ai.jobs;
  v_policy ai.org_policies;
  v_res billing.credit_reservations;
  v_cap bigint;
begin
  if v_role <> 'service_role' then
    if p_api_key_id is distinct from private.api_key_id() or (p_api_key_id is null and p_user_id is distinct from auth.uid()) then
      raise exception 'a job is submitted as the caller' using errcode = '42501';
    end if;
    if not private.has_permission(p_org_id, 'ai.use') then
      raise exception 'you need ai.use in this org to run AI jobs' using errcode = '42501';
    end if;
  end if;
  if p_idempotency_key is not null then
    select * into v_job from ai.jobs j where j.org_id = p_org_id and j.idempotency_key = p_idempotency_key;
    if found then
      return v_job; -- the same request again
    end if;
  end if;
  if p_worst_case is null or p_worst_case <= 0 then
    raise exception 'the worst-case cost must be positive' using errcode = '22023';
  end if;
  if jsonb_typeof(p_route -> 'main') is distinct from 'array' or jsonb_array_length(p_route -> 'main') = 0 then
    raise exception 'no priced deployment can serve this request' using errcode = '22023';
  end if;

  select * into v_policy from ai.org_policies where org_id = p_org_id;
  if p_tier is not null then
    if p_tier <> all (coalesce(v_policy.allowed_tiers, array['economy', 'balanced', 'premium'])) then
      raise exception 'the % tier is not allowed by this org''s AI policy', p_tier using errcode = '42501';
    end if;
    if p_tier = 'premium' and not billing.entitled(p_org_id, 'ai_premium_tier') then
      raise exception 'the premium tier is not included in this plan' using errcode = 'PT402';
    end if;
  end if;
  if p_model is not null and v_policy.allowed_models is not null and p_model <> all (v_policy.allowed_models) then
    raise exception 'model % is not allowed by this org''s AI policy', p_model using errcode = '42501';
  end if;

  perform private.ai_take_token(p_org_id, 'org', billing.limit_of(p_org_id, 'ai_requests_per_minute'));
  perform private.ai_take_token(p_org_id, coalesce(p_user_id::text, 'key:' || p_api_key_id::text, 'service'),
                                billing.limit_of(p_org_id, 'ai_member_requests_per_minute'));

  insert into ai.jobs (org_id, user_id, api_key_id, batch_id, source, idempotency_key, modality, tier, model_id,
                       input, route, reserved_credits)
  values (p_org_id, p_user_id, p_api_key_id, p_batch_id, p_source, p_idempotency_key, p_modality, p_tier, p_model,
          p_input, p_route, p_worst_case)
  returning * into v_job;

  v_res := billing.reserve_credits(p_org_id, p_worst_case, 'ai-job:' || v_job.id, p_ttl, 'ai.job:' || v_job.id);

  -- Caps, under the account lock the reservation took: the sums include this job.
  v_cap := coalesce(v_policy.monthly_credit_cap, billing.limit_of(p_org_id, 'ai_monthly_credit_cap'));
  if v_cap is not null and private.ai_month_spend(p_org_id) > v_cap then
    raise exception 'this org''s monthly AI spend cap of % credits would be exceeded', v_cap using errcode = 'PT402';
  end if;
  if v_policy.member_monthly_credit_cap is not null
     and private.ai_month_spend(p_org_id, p_user_id, p_api_key_id) > v_policy.member_monthly_credit_cap then
    raise exception 'your monthly AI spend cap of % credits in this org would be exceeded', v_policy.member_monthly_credit_cap
      using errcode = 'PT402';
  end if;

  update ai.jobs set reservation_id = v_res.id where id = v_job.id returning * into v_job;
  return v_job;
end
$$;

-- Opens a batch for the caller (the same caller rules as ai_admit_job); its jobs follow.
create or replace function private.ai_open_batch(p_org_id uuid, p_user_id uuid, p_api_key_id uuid, p_label text, p_total int)
returns ai.batches
language plpgsql security definer
set search_path = ''
as $$
declare
  v_batch ai.batches;
begin
  if coalesce(auth.role(), 'service_role') <> 'service_role' then
    if p_api_key_id is distinct from private.api_key_id() or (p_api_key_id is null and p_user_id is distinct from auth.uid()) then
      raise exception 'a batch is submitted as the caller' using errcode = '42501';
    end if;
    if not private.has_permission(p_org_id, 'ai.use') then
      raise exception 'you need ai.use in this org to run AI jobs' using errcode = '42501';
    end if;
  end if;
  insert into ai.batches (org_id, user_id, api_key_id, label, total)
  values (p_org_id, p_user_id, p_api_key_id, p_label, p_total)
  returning * into v_batch;
  return v_batch;
end
$$;

-- ---------------------------------------------------------------------------
-- Finishing: settle or void once, record the outcome, tell the world
-- ---------------------------------------------------------------------------

/*
 * Ends a job. Succeeded: settles the succeeded attempts' credits (capped at the reservation,
 * which releases the rest). Failed or canceled: voids, unless p_charge names delivered partial
 * work. Idempotent: a job already ended is returned unchanged, so a
 * worker that retries after a crash cannot charge twice.
 */
create or replace function private.ai_finish_job(
  p_job_id uuid, p_status text, p_output jsonb default null, p_error jsonb default null, p_charge bigint default null)
returns ai.jobs
language plpgsql security definer
set search_path = ''
as $$
declare
  v_job ai.jobs;
  v_charge bigint;
  v_cost bigint;
  v_deployment text;
begin
  if p_status not in ('succeeded', 'failed', 'canceled') then
    raise exception 'a job ends succeeded, failed or canceled' using errcode = '22023';
  end if;
  select * into v_job from ai.jobs where id = p_job_id for update;
  if not found then
    raise exception 'AI job not found' using errcode = 'PT404';
  end if;
  if v_job.status in ('succeeded', 'failed', 'canceled') then
    return v_job;
  end if;
  select coalesce(sum(a.provider_cost_micros), 0) into v_cost from ai.attempts a where a.job_id = p_job_id and a.billed;
  select a.deployment_id into v_deployment from ai.attempts a
  where a.job_id = p_job_id and a.purpose = 'main' and a.status = 'succeeded' order by a.attempt_no desc limit 1;
  -- What the org pays: on success, every succeeded attempt (the main call, moderation, prompt
  -- enhancement); otherwise nothing, unless the caller names delivered partial work (a stream
  -- cut after the client received part of it).
  v_charge := least(v_job.reserved_credits, case
    when p_charge is not null then p_charge
    when p_status = 'succeeded' then (select coalesce(sum(a.credits), 0) from ai.attempts a where a.job_id = p_job_id and a.status = 'succeeded')
    else 0 end);
  -- A reservation that expired meanwhile (a job stuck past its TTL) has already given its
  -- credits back: charge nothing rather than take credits no longer held.
  if v_job.reservation_id is not null
     and (select r.status from billing.credit_reservations r where r.id = v_job.reservation_id) <> 'pending' then
    v_charge := 0;
  elsif v_job.reservation_id is not null then
    if v_charge > 0 then
      perform billing.settle_credits(v_job.reservation_id, v_charge);
    else
      perform billing.void_credits(v_job.reservation_id);
    end if;
  end if;
  update ai.jobs
     set status = p_status, output = coalesce(p_output, output), error = p_error,
         progress = case when p_status = 'succeeded' then 100 else progress end,
         settled_credits = v_charge, provider_cost_micros = v_cost, deployment_id = v_deployment,
         finished_at = now()
   where id = p_job_id
  returning * into v_job;
  if p_status <> 'canceled' then
    perform private.emit_event(v_job.org_id,
      case when p_status = 'succeeded' then 'ai.job_succeeded' else 'ai.job_failed' end,
      'ai_job', v_job.id::text,
      jsonb_build_object('job_id', v_job.id, 'modality', v_job.modality, 'source', v_job.source,
                         'user_id', v_job.user_id, 'credits', v_charge,
                         'error', case when p_status = 'failed' then p_error ->> 'code' end));
  end if;
  return v_job;
end
$$;

-- Status and progress go live on the submitter's channel (an API key's jobs on the org's).
create or replace function private.ai_broadcast_job() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  if tg_op = 'UPDATE' and (new.status, new.progress, new.progress_message) is not distinct from (old.status, old.progress, old.progress_message) then
    return null;
  end if;
  perform realtime.send(
    jsonb_build_object('job_id', new.id, 'batch_id', new.batch_id, 'status', new.status, 'progress', new.progress,
                       'message', new.progress_message, 'modality', new.modality, 'source', new.source,
                       'error', new.error, 'credits', new.settled_credits),
    'ai.job',
    case when new.user_id is not null then 'user:' || new.user_id else 'org:' || new.org_id end,
    true);
  return null;
end
$$;
create trigger jobs_broadcast after insert or update on ai.jobs for each row execute function private.ai_broadcast_job();

-- ---------------------------------------------------------------------------
-- Client RPCs
-- ---------------------------------------------------------------------------

/*
 * Cancels a job (or nothing, if it already ended): the reservation is voided at once. A call
 * in flight is discarded when it returns, and async tasks are canceled at the provider by the
 * worker's poller. The submitter, or a billing manager of the org, may cancel.
 */
create or replace function ai.cancel_job(p_job_id uuid) returns ai.jobs
language plpgsql security definer
set search_path = ''
as $$
declare
  v_job ai.jobs;
begin
  select * into v_job from ai.jobs where id = p_job_id;
  if not found or not (
       (v_job.user_id is not null and v_job.user_id = auth.uid() and v_job.org_id in (select private.accessible_org_ids()))
       or (v_job.api_key_id is not null and v_job.api_key_id = private.api_key_id())
       or private.has_permission(v_job.org_id, 'billing.manage')) then
    raise exception 'AI job not found' using errcode = 'PT404';
  end if;
  return private.ai_finish_job(p_job_id, 'canceled', null, jsonb_build_object('code', 'canceled', 'message', 'canceled by the user'));
end
$$;
comment on function ai.cancel_job(uuid) is 'Cancels an AI job that has not ended and releases its credits. The submitter or a billing manager may.';

create or replace function ai.cancel_batch(p_batch_id uuid) returns int
language plpgsql security definer
set search_path = ''
as $$
declare
  v_batch ai.batches;
  v_id uuid;
  v_n int := 0;
begin
  select * into v_batch from ai.batches where id = p_batch_id;
  if not found or not (
       (v_batch.user_id is not null and v_batch.user_id = auth.uid() and v_batch.org_id in (select private.accessible_org_ids()))
       or (v_batch.api_key_id is not null and v_batch.api_key_id = private.api_key_id())
       or private.has_permission(v_batch.org_id, 'billing.manage')) then
    raise exception 'AI batch not found' using errcode = 'PT404';
  end if;
  update ai.batches set canceled_at = coalesce(canceled_at, now()) where id = p_batch_id;
  for v_id in select j.id from ai.jobs j where j.batch_id = p_batch_id and j.status in ('queued', 'running') order by j.id loop
    perform private.ai_finish_job(v_id, 'canceled', null, jsonb_build_object('code', 'canceled', 'message', 'the batch was canceled'));
    v_n := v_n + 1;
  end loop;
  return v_n;
end
$$;
comment on function ai.cancel_batch(uuid) is 'Cancels every job of a batch that has not ended; returns how many.';

-- ---------------------------------------------------------------------------
-- Views: batch progress, usage per org, member, model and day
-- ---------------------------------------------------------------------------

create view ai.batch_progress with (security_invoker = true) as
select b.id as batch_id, b.org_id, b.user_id, b.label, b.total, b.created_at, b.canceled_at,
       count(*) filter (where j.status = 'succeeded')::int as succeeded,
       count(*) filter (where j.status = 'failed')::int as failed,
       count(*) filter (where j.status = 'canceled')::int as canceled,
       count(*) filter (where j.status in ('queued', 'running'))::int as pending,
       (coalesce(sum(case when j.status in ('succeeded', 'failed', 'canceled') then 100 else j.progress end), 0) / b.total)::int as progress,
       coalesce(sum(j.reserved_credits) filter (where j.status in ('queued', 'running')), 0)::bigint as held_credits,
       coalesce(sum(j.settled_credits), 0)::bigint as spent_credits
from ai.batches b
left join ai.jobs j on j.batch_id = b.id
group by b.id;
comment on view ai.batch_progress is 'A batch''s progress: the sum of its jobs'' progress (finished jobs count 100) over its size, with counts per status and credits held and spent.';

create view ai.usage_daily with (security_invoker = true) as
select a.org_id, j.user_id, j.api_key_id, d.model_id, (a.started_at at time zone 'UTC')::date as day,
       count(*)::int as attempts,
       count(*) filter (where a.status = 'succeeded')::int as succeeded,
       coalesce(sum((a.units ->> 'input_token')::bigint), 0)::bigint as input_tokens,
       coalesce(sum((a.units ->> 'output_token')::bigint), 0)::bigint as output_tokens,
       coalesce(sum((a.units ->> 'image')::bigint), 0)::bigint as images,
       coalesce(sum((a.units ->> 'video_second')::numeric), 0) as video_seconds,
       coalesce(sum((a.units ->> 'character')::bigint), 0)::bigint as characters,
       coalesce(sum(a.provider_cost_micros) filter (where a.billed), 0)::bigint as provider_cost_micros,
       -- Charged: succeeded attempts of succeeded jobs, and partial work delivered by a cut stream.
       coalesce(sum(a.credits) filter (where a.status <> 'succeeded' or j.status = 'succeeded'), 0)::bigint as credits
from ai.attempts a
join ai.jobs j on j.id = a.job_id
left join ai.deployments d on d.id = a.deployment_id
group by a.org_id, j.user_id, j.api_key_id, d.model_id, (a.started_at at time zone 'UTC')::date;
comment on view ai.usage_daily is 'AI usage per org, member (or API key), model and UTC day: attempts, units, provider cost and credits. Readable by holders of billing.manage.';

create view ai.available_presets with (security_invoker = true) as
select o.org_id, o.key, o.kind, o.modality, o.name, o.body, false as global from ai.org_presets o
union all
select null::uuid, p.key, p.kind, p.modality, p.name, p.body, true from ai.presets p;
comment on view ai.available_presets is 'Global presets and the caller''s orgs'' own; an org preset shadows a global one with the same key (the api picks the org''s first).';

-- ---------------------------------------------------------------------------
-- RLS and grants
-- ---------------------------------------------------------------------------
alter table ai.batches enable row level security;
alter table ai.jobs enable row level security;
alter table ai.attempts enable row level security;
alter table ai.presets enable row level security;
alter table ai.org_presets enable row level security;
alter table private.ai_rate_buckets enable row level security;

revoke all on ai.batches, ai.jobs, ai.attempts, ai.presets, ai.org_presets, ai.batch_progress, ai.usage_daily,
  ai.available_presets from anon, authenticated;
grant all on ai.batches, ai.jobs, ai.attempts, ai.presets, ai.org_presets to service_role;
grant select on ai.batch_progress, ai.usage_daily, ai.available_presets to service_role;
grant select on ai.batches, ai.jobs, ai.attempts, ai.presets, ai.org_presets, ai.batch_progress, ai.usage_daily,
  ai.available_presets to authenticated;
grant insert, update, delete on ai.org_presets to authenticated;

-- Own jobs (a user's, in orgs whose MFA rule they meet; an API key's), or all of an org's for billing managers.
create policy "submitters and billing managers read jobs" on ai.jobs
  for select to authenticated
  using (
    (user_id = (select auth.uid()) and org_id in (select private.accessible_org_ids()))
    or (api_key_id is not null and api_key_id = (select private.api_key_id()))
    or org_id in (select private.org_ids_with_permission('billing.manage'))
  );
create policy "submitters and billing managers read batches" on ai.batches
  for select to authenticated
  using (
    (user_id = (select auth.uid()) and org_id in (select private.accessible_org_ids()))
    or (api_key_id is not null and api_key_id = (select private.api_key_id()))
    or org_id in (select private.org_ids_with_permission('billing.manage'))
  );
-- Attempts carry provider cost: billing managers only.
create policy "billing managers read attempts" on ai.attempts
  for select to authenticated
  using (org_id in (select private.org_ids_with_permission('billing.manage')));

create policy "signed-in users read global presets" on ai.presets
  for select to authenticated using (true);
create policy "members read their org's presets" on ai.org_presets
  for select to authenticated using (org_id in (select private.accessible_org_ids()));
create policy "writers add presets" on ai.org_presets
  for insert to authenticated with check (org_id in (select private.org_ids_with_permission('content.write')));
create policy "writers change presets" on ai.org_presets
  for update to authenticated
  using (org_id in (select private.org_ids_with_permission('content.write')))
  with check (org_id in (select private.org_ids_with_permission('content.write')));
create policy "writers remove presets" on ai.org_presets
  for delete to authenticated using (org_id in (select private.org_ids_with_permission('content.write')));

revoke all on function private.ai_required_units(text), private.ai_route(uuid, text, text, text, timestamptz),
  private.ai_take_token(uuid, text, bigint), private.ai_month_spend(uuid, uuid, uuid),
  private.ai_admit_job(uuid, uuid, uuid, text, text, text, text, jsonb, jsonb, bigint, text, uuid, interval),
  private.ai_finish_job(uuid, text, jsonb, jsonb, bigint), private.ai_broadcast_job(),
  private.ai_open_batch(uuid, uuid, uuid, text, int) from public;
-- The api admits as the caller (private is never exposed through PostgREST); the worker as service_role.
grant execute on function private.ai_route(uuid, text, text, text, timestamptz),
  private.ai_open_batch(uuid, uuid, uuid, text, int),
  private.ai_admit_job(uuid, uuid, uuid, text, text, text, text, jsonb, jsonb, bigint, text, uuid, interval)
  to authenticated, service_role;
grant execute on function private.ai_finish_job(uuid, text, jsonb, jsonb, bigint) to service_role;
revoke all on function ai.cancel_job(uuid), ai.cancel_batch(uuid) from public, anon;
grant execute on function ai.cancel_job(uuid), ai.cancel_batch(uuid) to authenticated, service_role;

-- Generated outputs: members read their org's folder; only the worker writes.
insert into storage.buckets (id, name, public, file_size_limit)
values ('ai-outputs', 'ai-outputs', false, 524288000)
on conflict (id) do nothing;
insert into private.org_buckets (bucket_id, read_permission, write_permission, module)
values ('ai-outputs', 'content.read', null, 'ai');
