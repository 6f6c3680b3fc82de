-- Follow-ups to the storage and AI gateway migrations (20261130000100, 20261130010000,
-- 20261130010100), which first went out without them. Every statement is idempotent, so this
-- applies both to a database holding those three as first released and to one that already has
-- these changes; it sorts before the content and video migrations, which use them.
--   * org buckets whose reads a module's own policies decide (read_permission null);
--   * the vision modality (the local face check) and its seed deployment;
--   * free routes (a zero worst case holds nothing), deployment health that counts only the
--     deployment's own failures, org API keys reading routes, policies and presets, cancel that
--     another user cannot use on an API key's work, rate tokens over any period in one statement,
--     stored call results for resumed runs, inputs erased on request, comments on every column.

-- ===========================================================================
-- Storage: org buckets whose reads the module's own storage.objects policies decide
-- ===========================================================================
alter table private.org_buckets alter column read_permission drop not null;
comment on column private.org_buckets.read_permission is 'Permission (public.permissions) needed to read, list and sign URLs for objects in the org''s folder; null when the module''s own storage.objects policies decide reads (per-document access).';

-- ===========================================================================
-- Catalog
-- ===========================================================================
alter table ai.models drop constraint if exists models_modality_check, add constraint models_modality_check check (modality in ('text', 'image', 'video', 'audio', 'embedding', 'moderation', 'vision'));
alter table ai.tiers drop constraint if exists tiers_modality_check, add constraint tiers_modality_check check (modality in ('text', 'image', 'video', 'audio', 'embedding', 'moderation', 'vision'));
alter table ai.org_routes drop constraint if exists org_routes_modality_check, add constraint org_routes_modality_check check (modality in ('text', 'image', 'video', 'audio', 'embedding', 'moderation', 'vision'));
comment on column ai.org_policies.monthly_credit_cap is 'Most credits AI may spend in a calendar month (UTC) for the whole org, computed from settled and held jobs; null = the plan''s ai_monthly_credit_cap. It can only lower the plan''s cap, never raise it.';
comment on column ai.deployment_health.window_failures is 'Calls in the window that failed through the deployment''s fault (not content policy, context window or bad requests, which are the request''s).';

-- The face check: only the local provider implements it; a hosted project adds a real vision deployment.
insert into ai.models (id, modality, capabilities, context_window, max_output, description) values
  ('local-vision', 'vision', '{faces}', null, null, 'Local face check (keyless development): one face in the middle of the picture, none when the file contains NOFACE, a refusal when it contains FLAGME')
on conflict (id) do nothing;
insert into ai.deployments (id, model_id, provider_id, provider_model, priority, policy_alternative) values
  ('local/vision', 'local-vision', 'local', 'local-vision', 10, false)
on conflict (id) do nothing;
insert into ai.prices (deployment_id, unit, variant, per_units, provider_cost_micros, credits, effective_from)
select 'local/vision', 'call', '', 1, 0, 0, '2026-01-01'
where not exists (select 1 from ai.prices where deployment_id = 'local/vision');
insert into ai.tiers (modality, tier, position, deployment_id)
select 'vision', 'economy', 0, 'local/vision'
where not exists (select 1 from ai.tiers where modality = 'vision' and tier = 'economy');

-- Members read their org's routes and policy, and so does an org API key with ai.use (the
-- gateway reads the policy as the caller: a key must be held to it like a member).
drop policy if exists "members read their org's routes" on ai.org_routes;
create policy "members read their org's routes" on ai.org_routes
  for select to authenticated
  using (org_id in (select private.accessible_org_ids()) or org_id in (select private.org_ids_with_permission('ai.use')));
drop policy if exists "members read their org's AI policy" on ai.org_policies;
create policy "members read their org's AI policy" on ai.org_policies
  for select to authenticated
  using (org_id in (select private.accessible_org_ids()) or org_id in (select private.org_ids_with_permission('ai.use')));

/*
 * Records one call's outcome and returns the deployment's cooldown_until. Rules:
 * - 429, 401, 404, 408/timeouts and 5xx cool at once, for Retry-After (capped at 5 min) or 10 s;
 *   but a 429 never cools the only deployment a request could use (p_sole): it would fail
 *   every request instead of letting it wait.
 * - The deployment's own failures above half of at least 5 calls in the one-minute window
 *   cool for 30 s (this is what catches repeated 429s on the only deployment).
 * - Content policy, context window and bad requests never cool, and do not count as the
 *   deployment's failures: they are the request's fault (and any caller could send them).
 * cooldown_until only moves later (greatest()), so a shorter cooldown never cuts a longer one.
 */
create or replace function private.ai_record_health(
  p_deployment_id text, p_ok boolean, p_status int default null, p_error_class text default null,
  p_retry_after_ms bigint default null, p_sole boolean default false)
returns timestamptz
language plpgsql security definer
set search_path = ''
as $$
declare
  v_now timestamptz := clock_timestamp();
  v_h ai.deployment_health;
  v_until timestamptz;
  v_reason text;
begin
  insert into ai.deployment_health as h (deployment_id) values (p_deployment_id)
  on conflict (deployment_id) do update set updated_at = v_now
  returning * into v_h;
  if v_h.window_started_at < v_now - interval '1 minute' then
    v_h.window_started_at := v_now;
    v_h.window_requests := 0;
    v_h.window_failures := 0;
  end if;
  v_h.window_requests := v_h.window_requests + 1;
  if not p_ok and p_error_class not in ('content_policy', 'context_window', 'bad_request') then
    v_h.window_failures := v_h.window_failures + 1;
    if p_error_class in ('rate_limit', 'auth', 'not_found', 'timeout', 'server', 'overloaded')
       and not (p_error_class = 'rate_limit' and p_sole) then
      v_until := v_now + make_interval(secs => least(coalesce(p_retry_after_ms, 10000), 300000) / 1000.0);
      v_reason := p_error_class;
    elsif v_h.window_requests >= 5 and v_h.window_failures * 2 > v_h.window_requests then
      v_until := v_now + interval '30 seconds';
      v_reason := 'failure rate';
    end if;
  end if;
  update ai.deployment_health
     set window_started_at = v_h.window_started_at,
         window_requests = v_h.window_requests,
         window_failures = v_h.window_failures,
         last_status = coalesce(p_status, case when p_ok then 200 end),
         last_error_class = case when p_ok then last_error_class else p_error_class end,
         last_error_at = case when p_ok then last_error_at else v_now end,
         last_success_at = case when p_ok then v_now else last_success_at end,
         cooldown_reason = case when v_until > coalesce(cooldown_until, '-infinity') then v_reason else cooldown_reason end,
         cooldown_until = greatest(cooldown_until, v_until),
         updated_at = v_now
   where deployment_id = p_deployment_id
  returning cooldown_until into v_until;
  return v_until;
end
$$;

-- ---------------------------------------------------------------------------
-- Column comments (Studio shows them to admins editing the catalog)
-- ---------------------------------------------------------------------------
comment on column ai.providers.id is 'Short name used by deployments and in the env override PLINTH_AI_<ID>_BASE_URL (e.g. openai, anthropic, groq).';
comment on column ai.providers.created_at is 'When the provider was added.';
comment on column ai.providers.updated_at is 'Last change (set by trigger).';
comment on column ai.models.modality is 'What the model produces: text, image, video, audio, embedding, moderation, or vision (facts about an image: face boxes); jobs of that modality may use it.';
comment on column ai.models.description is 'Shown to admins and in model pickers.';
comment on column ai.models.enabled is 'Off: not routed to, not listed, not accepted by name.';
comment on column ai.models.created_at is 'When the model was added.';
comment on column ai.models.updated_at is 'Last change (set by trigger).';
comment on column ai.deployments.id is 'Conventionally <provider>/<model>; what attempts and health rows name.';
comment on column ai.deployments.model_id is 'The model this deployment serves.';
comment on column ai.deployments.provider_id is 'The provider that runs it (its adapter, base URL and key).';
comment on column ai.deployments.enabled is 'Off: never routed to, even if a tier lists it.';
comment on column ai.deployments.created_at is 'When the deployment was added.';
comment on column ai.deployments.updated_at is 'Last change (set by trigger).';
comment on column ai.prices.id is 'Row id; prices are changed by adding rows, not by editing them.';
comment on column ai.prices.deployment_id is 'The deployment the price applies to.';
comment on column ai.prices.currency is 'Currency of provider_cost_micros (credits have none).';
comment on column ai.prices.created_at is 'When the row was added (effective_from says when it applies).';
comment on column ai.tiers.modality is 'The modality the route serves.';
comment on column ai.tiers.tier is 'economy, balanced or premium.';
comment on column ai.tiers.position is 'Order in the route, lowest first: the first healthy deployment answers, the rest are fallbacks.';
comment on column ai.tiers.deployment_id is 'The deployment at this position.';
comment on column ai.org_routes.org_id is 'The org whose route this is.';
comment on column ai.org_routes.modality is 'The modality the route serves.';
comment on column ai.org_routes.tier is 'economy, balanced or premium.';
comment on column ai.org_routes.position is 'Order in the route, lowest first.';
comment on column ai.org_routes.deployment_id is 'The deployment at this position.';
comment on column ai.org_policies.org_id is 'The org the policy is for (one row per org at most).';
comment on column ai.org_policies.allowed_tiers is 'Tiers the org''s members and keys may use; premium also needs the plan''s ai_premium_tier.';
comment on column ai.org_policies.updated_at is 'Last change (set by trigger).';
comment on column ai.deployment_health.deployment_id is 'The deployment this row describes.';
comment on column ai.deployment_health.cooldown_reason is 'The error class (or "failure rate") that set the current cooldown.';
comment on column ai.deployment_health.last_status is 'HTTP status of the last call (200 for a success).';
comment on column ai.deployment_health.last_error_class is 'Error class of the last failed call.';
comment on column ai.deployment_health.last_error_at is 'When the last call failed.';
comment on column ai.deployment_health.last_success_at is 'When a call last succeeded.';
comment on column ai.deployment_health.window_started_at is 'Start of the current one-minute window.';
comment on column ai.deployment_health.updated_at is 'Last outcome recorded.';

-- ===========================================================================
-- Jobs
-- ===========================================================================
alter table ai.jobs drop constraint if exists jobs_modality_check, add constraint jobs_modality_check check (modality in ('text', 'image', 'video', 'audio', 'embedding', 'moderation', 'vision'));
alter table ai.jobs drop constraint if exists jobs_reserved_credits_check, add constraint jobs_reserved_credits_check check (reserved_credits >= 0);
-- Monthly spend reads the jobs themselves; this covering index made every status update non-HOT.
drop index if exists ai.jobs_spend_idx;
-- Status and progress change several times per job: leave room on each page so those updates
-- stay HOT (no indexed column changes), which keeps a busy gateway's writes cheap.
alter table ai.jobs set (fillfactor = 80);
comment on column ai.jobs.reserved_credits is 'The worst case held at admission (max output x the highest rate in the route, n x image price, seconds x video price); 0 for a free route, which holds nothing (reservation_id is then null).';
alter table ai.attempts add column if not exists result jsonb;
comment on column ai.attempts.result is 'What a succeeded call returned (an answer, a moderation verdict, stored files), kept until its job ends: a run resumed after its worker died finishes from it instead of calling the provider again.';
-- The webhooks function records deliveries as service_role.
grant select, insert on private.ai_webhook_receipts to service_role;

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

-- Rate tokens over any period (replaces the per-minute signature).
drop function if exists private.ai_take_token(uuid, text, bigint);
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

-- A plan limit from the entitlements ai_admit_job read: null = unlimited, 0 = not included.
create or replace function private.ai_plan_limit(p_plan jsonb, p_key text) returns bigint
language sql immutable
set search_path = ''
as $$
  select case when coalesce((p_plan -> p_key ->> 'enabled')::boolean, false) then (p_plan -> p_key ->> 'limit')::bigint else 0 end
$$;

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

-- An org API key with ai.use reads them too: its jobs apply the org's presets as a member's do.
drop policy if exists "members read their org's presets" on ai.org_presets;
create policy "members read their org's presets" on ai.org_presets
  for select to authenticated
  using (org_id in (select private.accessible_org_ids()) or org_id in (select private.org_ids_with_permission('ai.use')));

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
