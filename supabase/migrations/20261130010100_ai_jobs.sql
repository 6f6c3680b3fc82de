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
  modality text not null check (modality in ('text', 'image', 'video', 'audio', 'embedding', 'moderation', 'vision')),
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
  reserved_credits bigint not null check (reserved_credits >= 0),
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
-- Status and progress change several times per job: leave room on each page so those updates
-- stay HOT (no indexed column changes), which keeps a busy gateway's writes cheap.
alter table ai.jobs set (fillfactor = 80);
comment on table ai.jobs is 'One AI request: its input, the route it was admitted with (deployments and the prices in force at submission), its live status and progress, its output (text inline; files as Storage paths in ai-outputs), and what it reserved and settled.';
comment on column ai.jobs.source is 'Who submitted it: api (POST /api/ai/jobs), openai (the OpenAI-compatible endpoint), or a product module''s name.';
comment on column ai.jobs.idempotency_key is 'The client''s Idempotency-Key: a second submit with the same key returns the first job.';
comment on column ai.jobs.route is 'The deployments the router may use, in order, each with the price rows in force at submission (what the job is priced from): {"main": [...], "moderation": [...]?, "enhance": [...]?}.';
comment on column ai.jobs.output is 'Text jobs: {text, finish_reason, usage}. File jobs: {files: [{path, mime_type, bytes, sha256}]} in the ai-outputs bucket.';
comment on column ai.jobs.error is '{code, message, class} when failed: the last attempt''s error, or why nothing could run.';
comment on column ai.jobs.reserved_credits is 'The worst case held at admission (max output x the highest rate in the route, n x image price, seconds x video price); 0 for a free route, which holds nothing (reservation_id is then null).';
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
  result jsonb,
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
comment on column ai.attempts.result is 'What a succeeded call returned (an answer, a moderation verdict, stored files), kept until its job ends: a run resumed after its worker died finishes from it instead of calling the provider again.';
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
    when 'vision' then array['call']
  end
$$;

-- The deployments named, in that order, that can serve the modality now: enabled (with their
-- model and provider) and priced in every unit the modality needs, each with its price rows in
-- force at p_at. Unknown or unpriced names are left out (fail closed).
create or replace function private.ai_route_of(p_deployments text[], p_modality text, p_at timestamptz default now())
returns table (
  deployment_id text, model_id text, provider_id text, provider_kind text, provider_model text,
  context_window int, max_output int, policy_alternative boolean, prices jsonb)
language sql stable security definer
set search_path = ''
as $$
  with chain as (
    select c.id, min(c.ord) as ord from unnest(p_deployments) with ordinality as c (id, ord) group by c.id
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

-- The route for a request: by model name (its deployments by priority) or by tier (the org's
-- own route, else the default); ai_route_of keeps the usable ones and prices them.
create or replace function private.ai_route(p_org_id uuid, p_modality text, p_tier text, p_model text, p_at timestamptz default now())
returns table (
  deployment_id text, model_id text, provider_id text, provider_kind text, provider_model text,
  context_window int, max_output int, policy_alternative boolean, prices jsonb)
language sql stable security definer
set search_path = ''
as $$
  select * from private.ai_route_of(array(
    select d.id from (
      select r.deployment_id as id, r.position as ord from ai.org_routes r
      where p_model is null and r.org_id = p_org_id and r.modality = p_modality and r.tier = p_tier
      union all
      select t.deployment_id, t.position from ai.tiers t
      where p_model is null and t.modality = p_modality and t.tier = p_tier
        and not exists (select 1 from ai.org_routes r where r.org_id = p_org_id and r.modality = p_modality and r.tier = p_tier)
      union all
      select d.id, d.priority from ai.deployments d where p_model is not null and d.model_id = p_model
    ) d
    order by d.ord, d.id), p_modality, p_at)
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

-- Takes one token from a bucket holding `p_capacity` that refills evenly over `p_period`, or
-- raises PT429 with the seconds until one is free (`p_what` names the limit in the message).
create or replace function private.ai_take_token(p_org_id uuid, p_subject text, p_capacity bigint, p_period interval, p_what text)
returns void
language plpgsql security definer
set search_path = ''
as $$
declare
  v_now timestamptz := clock_timestamp();
  v_rate double precision;
  v_tokens double precision;
begin
  if p_capacity is null then
    return; -- unlimited
  end if;
  if p_capacity <= 0 then
    raise exception '% are not included in this plan', p_what using errcode = 'PT402';
  end if;
  v_rate := p_capacity / extract(epoch from p_period);
  insert into private.ai_rate_buckets as b (org_id, subject, tokens, refilled_at)
  values (p_org_id, p_subject, p_capacity - 1, v_now)
  on conflict (org_id, subject) do update
    set tokens = least(p_capacity::double precision,
                       b.tokens + extract(epoch from (v_now - b.refilled_at)) * v_rate) - 1,
        refilled_at = v_now
  returning tokens into v_tokens;
  if v_tokens < 0 then
    raise exception 'rate limit reached: % %', p_capacity, p_what
      using errcode = 'PT429', hint = 'retry_after=' || greatest(1, ceil(-v_tokens / v_rate))::int;
  end if;
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
-- The webhooks function records deliveries as service_role.
grant select, insert on private.ai_webhook_receipts to service_role;

-- ---------------------------------------------------------------------------
-- Admission: one transaction that checks, holds and records, or refuses and leaves nothing
-- ---------------------------------------------------------------------------

-- A plan limit from the entitlements ai_admit_job read: null = unlimited, 0 = not included.
create or replace function private.ai_plan_limit(p_plan jsonb, p_key text) returns bigint
language sql immutable
set search_path = ''
as $$
  select case when coalesce((p_plan -> p_key ->> 'enabled')::boolean, false) then (p_plan -> p_key ->> 'limit')::bigint else 0 end
$$;

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
  v_id uuid := gen_random_uuid();
  v_job ai.jobs;
  v_policy ai.org_policies;
  v_res_id uuid;
  v_cap bigint;
  v_plan jsonb;
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
      if v_job.user_id is distinct from p_user_id or v_job.api_key_id is distinct from p_api_key_id then
        raise exception 'this Idempotency-Key was already used in this org by someone else; send a fresh one' using errcode = '23505';
      end if;
      return v_job;
    end if;
  end if;
  if p_worst_case is null or p_worst_case < 0 then
    raise exception 'the worst-case cost must not be negative' using errcode = '22023';
  end if;
  if jsonb_typeof(p_route -> 'main') is distinct from 'array' or jsonb_array_length(p_route -> 'main') = 0 then
    raise exception 'no priced deployment can serve this request' using errcode = '22023';
  end if;

  select * into v_policy from ai.org_policies where org_id = p_org_id;
  select coalesce(jsonb_object_agg(e.key, jsonb_build_object('enabled', e.enabled, 'limit', e.limit_value)), '{}')
    into v_plan
    from billing.entitlements e
   where e.plan_key = billing.current_plan(p_org_id) and e.key like 'ai\_%';
  if p_tier is not null then
    if p_tier <> all (coalesce(v_policy.allowed_tiers, array['economy', 'balanced', 'premium'])) then
      raise exception 'the % tier is not allowed by this org''s AI policy', p_tier using errcode = '42501';
    end if;
    if p_tier = 'premium' and not coalesce((v_plan -> 'ai_premium_tier' ->> 'enabled')::boolean, false) then
      raise exception 'the premium tier is not included in this plan' using errcode = 'PT402';
    end if;
  end if;
  if p_model is not null and v_policy.allowed_models is not null and p_model <> all (v_policy.allowed_models) then
    raise exception 'model % is not allowed by this org''s AI policy', p_model using errcode = '42501';
  end if;

  perform private.ai_take_token(p_org_id, 'org', private.ai_plan_limit(v_plan, 'ai_requests_per_minute'),
                                interval '1 minute', 'AI requests per minute');
  perform private.ai_take_token(p_org_id, coalesce(p_user_id::text, 'key:' || p_api_key_id::text, 'service'),
                                private.ai_plan_limit(v_plan, 'ai_member_requests_per_minute'),
                                interval '1 minute', 'AI requests per minute per member');

  -- A free route can charge nothing, so it holds nothing (and needs no balance).
  if p_worst_case > 0 then
    v_res_id := (billing.reserve_credits(p_org_id, p_worst_case, 'ai-job:' || v_id, p_ttl, 'ai.job:' || v_id)).id;
  end if;

  v_cap := least(v_policy.monthly_credit_cap, private.ai_plan_limit(v_plan, 'ai_monthly_credit_cap'));
  if v_cap is not null and private.ai_month_spend(p_org_id) + p_worst_case > v_cap then
    raise exception 'this org''s monthly AI spend cap of % credits would be exceeded', v_cap using errcode = 'PT402';
  end if;
  if v_policy.member_monthly_credit_cap is not null
     and private.ai_month_spend(p_org_id, p_user_id, p_api_key_id) + p_worst_case > v_policy.member_monthly_credit_cap then
    raise exception 'your monthly AI spend cap of % credits in this org would be exceeded', v_policy.member_monthly_credit_cap
      using errcode = 'PT402';
  end if;

  insert into ai.jobs (id, org_id, user_id, api_key_id, batch_id, source, idempotency_key, modality, tier, model_id,
                       input, route, reserved_credits, reservation_id)
  values (v_id, p_org_id, p_user_id, p_api_key_id, p_batch_id, p_source, p_idempotency_key, p_modality, p_tier, p_model,
          p_input, p_route, p_worst_case, v_res_id)
  returning * into v_job;
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
  v_succeeded bigint;
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
  -- One read of the attempts: what the providers billed, what succeeded, and which answered.
  select coalesce(sum(a.provider_cost_micros) filter (where a.billed), 0),
         coalesce(sum(a.credits) filter (where a.status = 'succeeded'), 0),
         (array_agg(a.deployment_id order by a.attempt_no desc) filter (where a.purpose = 'main' and a.status = 'succeeded'))[1]
    into v_cost, v_succeeded, v_deployment
    from ai.attempts a where a.job_id = p_job_id;
  -- What the org pays: on success, every succeeded attempt (the main call, moderation, prompt
  -- enhancement); otherwise nothing, unless the caller names delivered partial work (a stream
  -- cut after the client received part of it).
  v_charge := least(v_job.reserved_credits, case
    when p_charge is not null then p_charge
    when p_status = 'succeeded' then v_succeeded
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
  -- The calls' results were kept only for a run resumed after a crash; the job holds what it needs.
  update ai.attempts set result = null where job_id = p_job_id and result is not null;
  update ai.jobs
     set status = p_status, output = coalesce(p_output, output), error = p_error,
         progress = case when p_status = 'succeeded' then 100 else progress end,
         progress_message = case p_status when 'succeeded' then 'done' when 'canceled' then 'canceled' else 'failed' end,
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

-- Replaces ended jobs' inputs (prompts, scripts, file paths: personal data) with a marker; the
-- record of what ran and what it cost stays. Returns how many changed.
create or replace function private.ai_erase_job_inputs(p_job_ids uuid[]) returns int
language plpgsql security definer
set search_path = ''
as $$
declare
  v_n int;
begin
  update ai.jobs set input = jsonb_build_object('erased', true)
   where id = any (p_job_ids) and status in ('succeeded', 'failed', 'canceled') and input is distinct from jsonb_build_object('erased', true);
  get diagnostics v_n = row_count;
  return v_n;
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
  -- coalesce: for a user, private.api_key_id() is null, and "not (false or null)" is null, which
  -- an IF takes as false: without it any signed-in user could cancel an API key's work.
  if not found or not coalesce(
       (v_job.user_id is not null and v_job.user_id = auth.uid() and v_job.org_id in (select private.accessible_org_ids()))
       or (v_job.api_key_id is not null and v_job.api_key_id = private.api_key_id())
       or private.has_permission(v_job.org_id, 'billing.manage'), false) then
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
  -- coalesce: for a user, private.api_key_id() is null, and "not (false or null)" is null, which
  -- an IF takes as false: without it any signed-in user could cancel an API key's work.
  if not found or not coalesce(
       (v_batch.user_id is not null and v_batch.user_id = auth.uid() and v_batch.org_id in (select private.accessible_org_ids()))
       or (v_batch.api_key_id is not null and v_batch.api_key_id = private.api_key_id())
       or private.has_permission(v_batch.org_id, 'billing.manage'), false) then
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
-- An org API key with ai.use reads them too: its jobs apply the org's presets as a member's do.
create policy "members read their org's presets" on ai.org_presets
  for select to authenticated
  using (org_id in (select private.accessible_org_ids()) or org_id in (select private.org_ids_with_permission('ai.use')));
create policy "writers add presets" on ai.org_presets
  for insert to authenticated with check (org_id in (select private.org_ids_with_permission('content.write')));
create policy "writers change presets" on ai.org_presets
  for update to authenticated
  using (org_id in (select private.org_ids_with_permission('content.write')))
  with check (org_id in (select private.org_ids_with_permission('content.write')));
create policy "writers remove presets" on ai.org_presets
  for delete to authenticated using (org_id in (select private.org_ids_with_permission('content.write')));

revoke all on function private.ai_required_units(text), private.ai_plan_limit(jsonb, text),
  private.ai_route(uuid, text, text, text, timestamptz),
  private.ai_take_token(uuid, text, bigint, interval, text),
  private.ai_route_of(text[], text, timestamptz), private.ai_erase_job_inputs(uuid[]), private.ai_month_spend(uuid, uuid, uuid),
  private.ai_admit_job(uuid, uuid, uuid, text, text, text, text, jsonb, jsonb, bigint, text, uuid, interval),
  private.ai_finish_job(uuid, text, jsonb, jsonb, bigint), private.ai_broadcast_job(),
  private.ai_open_batch(uuid, uuid, uuid, text, int) from public;
-- The api admits as the caller (private is never exposed through PostgREST); the worker as service_role.
grant execute on function private.ai_route(uuid, text, text, text, timestamptz), private.ai_route_of(text[], text, timestamptz),
  private.ai_open_batch(uuid, uuid, uuid, text, int),
  private.ai_admit_job(uuid, uuid, uuid, text, text, text, text, jsonb, jsonb, bigint, text, uuid, interval)
  to authenticated, service_role;
grant execute on function private.ai_finish_job(uuid, text, jsonb, jsonb, bigint), private.ai_erase_job_inputs(uuid[]) to service_role;
revoke all on function ai.cancel_job(uuid), ai.cancel_batch(uuid) from public, anon;
grant execute on function ai.cancel_job(uuid), ai.cancel_batch(uuid) to authenticated, service_role;

-- Generated outputs: members read their org's folder; only the worker writes.
insert into storage.buckets (id, name, public, file_size_limit)
values ('ai-outputs', 'ai-outputs', false, 524288000)
on conflict (id) do nothing;
insert into private.org_buckets (bucket_id, read_permission, write_permission, module)
values ('ai-outputs', 'content.read', null, 'ai');

-- ---------------------------------------------------------------------------
-- Column comments (Studio shows them to admins)
-- ---------------------------------------------------------------------------
comment on column ai.batches.id is 'The batch; its jobs carry it in ai.jobs.batch_id.';
comment on column ai.batches.org_id is 'The org the batch spends in.';
comment on column ai.batches.user_id is 'The member who submitted it (null for an API key).';
comment on column ai.batches.api_key_id is 'The org API key that submitted it (null for a member).';
comment on column ai.batches.label is 'A name the submitter gave it.';
comment on column ai.batches.total is 'How many jobs it has.';
comment on column ai.batches.canceled_at is 'When it was canceled as a whole, if it was.';
comment on column ai.batches.created_at is 'When it was submitted.';
comment on column ai.jobs.id is 'The job; also the idempotency key of its reservation and settle (ai-job:<id>).';
comment on column ai.jobs.org_id is 'The org whose credits it spends.';
comment on column ai.jobs.user_id is 'The member who submitted it (null for an API key); its status goes to user:<id>.';
comment on column ai.jobs.api_key_id is 'The org API key that submitted it (null for a member); its status goes to org:<id>.';
comment on column ai.jobs.batch_id is 'The batch it belongs to, if any.';
comment on column ai.jobs.modality is 'text, image, video, audio, embedding, moderation or vision.';
comment on column ai.jobs.tier is 'The quality tier asked for (exactly one of tier and model_id is set).';
comment on column ai.jobs.model_id is 'The model asked for by name (exactly one of tier and model_id is set).';
comment on column ai.jobs.input is 'The validated input, with its preset applied (and enhanced_prompt once enhancement ran).';
comment on column ai.jobs.status is 'queued, running, succeeded, failed or canceled. Every change is broadcast as event ai.job.';
comment on column ai.jobs.progress is 'Percent done, 0 to 100 (from the provider where it reports progress).';
comment on column ai.jobs.progress_message is 'What the job is doing (generating, rendering, storing the output, done, failed).';
comment on column ai.jobs.reservation_id is 'The credit reservation that holds reserved_credits (billing.credit_reservations).';
comment on column ai.jobs.provider_cost_micros is 'What the providers billed for its calls, successful or not, in millionths of their currency.';
comment on column ai.jobs.deployment_id is 'The deployment whose answer became the output.';
comment on column ai.jobs.created_at is 'When it was admitted.';
comment on column ai.jobs.started_at is 'When its first provider call started.';
comment on column ai.jobs.finished_at is 'When it ended.';
comment on column ai.jobs.updated_at is 'Last change (set by trigger).';
comment on column ai.attempts.id is 'The attempt; also our idempotency key for async submits (looked up when the outcome is unknown).';
comment on column ai.attempts.job_id is 'The job the call was made for.';
comment on column ai.attempts.org_id is 'The job''s org.';
comment on column ai.attempts.attempt_no is 'Order of the job''s calls, from 1.';
comment on column ai.attempts.purpose is 'main (the job''s own call), moderation (of the input) or enhance (prompt enhancement).';
comment on column ai.attempts.kind is 'initial (first call), retry (same deployment again) or fallback (the next deployment).';
comment on column ai.attempts.deployment_id is 'The deployment called.';
comment on column ai.attempts.provider_id is 'Its provider.';
comment on column ai.attempts.provider_model is 'The model name sent to the provider.';
comment on column ai.attempts.error_class is 'What the router made of a failure: rate_limit, overloaded, server, timeout, context_window, content_policy, auth, bad_request, not_found.';
comment on column ai.attempts.error_code is 'The provider''s own error code (context_length_exceeded, SAFETY.INPUT.TEXT, ...).';
comment on column ai.attempts.error_message is 'The provider''s message, shortened to 1000 characters.';
comment on column ai.attempts.http_status is 'The provider''s HTTP status, when there was a response.';
comment on column ai.attempts.progress is 'The provider''s own progress (0 to 1) of an async task.';
comment on column ai.attempts.provider_cost_micros is 'What the provider billed for this call, in millionths of its currency.';
comment on column ai.attempts.latency_ms is 'How long the call took (for async tasks: from submit to the last poll).';
comment on column ai.attempts.started_at is 'When the call was about to be made (the row is written before it).';
comment on column ai.attempts.finished_at is 'When the call ended (null while in flight or while an async task runs).';
comment on column ai.presets.key is 'The key inputs name in "preset".';
comment on column ai.presets.kind is 'style (image, video: prompt suffix, negative prompt) or prompt_template (text: a template with {{variables}}).';
comment on column ai.presets.modality is 'The modality it applies to.';
comment on column ai.presets.name is 'Shown in pickers.';
comment on column ai.presets.created_at is 'When it was added.';
comment on column ai.org_presets.org_id is 'The org it belongs to.';
comment on column ai.org_presets.key is 'The key inputs name in "preset"; shadows a global preset with the same key.';
comment on column ai.org_presets.kind is 'style or prompt_template.';
comment on column ai.org_presets.modality is 'The modality it applies to.';
comment on column ai.org_presets.name is 'Shown in pickers.';
comment on column ai.org_presets.body is 'style: {"prompt_suffix", "negative_prompt"?}. prompt_template: {"template", "system"?}.';
comment on column ai.org_presets.created_by is 'The member who made it.';
comment on column ai.org_presets.created_at is 'When it was made.';
comment on column ai.org_presets.updated_at is 'Last change (set by trigger).';
