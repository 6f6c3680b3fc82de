-- Core extensions of the AI gateway that the talking-video module (schema video) needs, kept in
-- the gateway's own terms so that any module can use them:
-- 1. modality `vision`: a face check that returns bounding boxes or a refusal, priced per call;
-- 2. a job whose worst case is 0 credits (a free route, such as the face check) holds nothing,
--    so checking a photo needs no balance and a rejection is free;
-- 3. token buckets over any period (per minute was the only one), for plan limits such as
--    "10 video generations per hour";
-- 4. a module's own route: the deployments it names, in its order, with the prices in force
--    (private.ai_route_of, which private.ai_route now also uses, so the pricing rules live once);
-- 5. forgetting jobs' inputs (GDPR erasure).

-- ---------------------------------------------------------------------------
-- 1. Modality vision
-- ---------------------------------------------------------------------------
alter table ai.models drop constraint models_modality_check,
  add constraint models_modality_check check (modality in ('text', 'image', 'video', 'audio', 'embedding', 'moderation', 'vision'));
alter table ai.tiers drop constraint tiers_modality_check,
  add constraint tiers_modality_check check (modality in ('text', 'image', 'video', 'audio', 'embedding', 'moderation', 'vision'));
alter table ai.org_routes drop constraint org_routes_modality_check,
  add constraint org_routes_modality_check check (modality in ('text', 'image', 'video', 'audio', 'embedding', 'moderation', 'vision'));
alter table ai.jobs drop constraint jobs_modality_check,
  add constraint jobs_modality_check check (modality in ('text', 'image', 'video', 'audio', 'embedding', 'moderation', 'vision'));
comment on column ai.models.modality is 'What the model produces: text, image, video, audio, embedding, moderation, or vision (facts about an image: face boxes); jobs of that modality may use it.';
comment on column ai.jobs.modality is 'text, image, video, audio, embedding, moderation or vision.';

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

-- The keyless face check: off on a hosted project (like every local deployment) until switched on.
insert into ai.models (id, modality, capabilities, description) values
  ('local-vision', 'vision', '{faces}', 'Local face check (keyless development): one face in the middle of the picture, none when the file contains NOFACE, a refusal when it contains FLAGME')
on conflict (id) do nothing;
insert into ai.deployments (id, model_id, provider_id, provider_model, priority) values
  ('local/vision', 'local-vision', 'local', 'local-vision', 10)
on conflict (id) do nothing;
insert into ai.prices (deployment_id, unit, variant, per_units, provider_cost_micros, credits, effective_from) values
  ('local/vision', 'call', '', 1, 0, 0, '2026-01-01')
on conflict do nothing;
insert into ai.tiers (modality, tier, position, deployment_id) values ('vision', 'economy', 0, 'local/vision')
on conflict do nothing;

-- ---------------------------------------------------------------------------
-- 2. Free jobs hold nothing
-- ---------------------------------------------------------------------------
alter table ai.jobs drop constraint jobs_reserved_credits_check,
  add constraint jobs_reserved_credits_check check (reserved_credits >= 0);
comment on column ai.jobs.reserved_credits is 'The worst case held at admission (max output x the highest rate in the route, n x image price, seconds x video price); 0 for a free route, which holds nothing (reservation_id is then null).';

/*
 * Admits a job (see 20261130010100_ai_jobs.sql for the full contract). Changed here: a worst
 * case of 0 credits (every deployment of the route is free) admits without a reservation.
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

  perform private.ai_take_token(p_org_id, 'org', private.ai_plan_limit(v_plan, 'ai_requests_per_minute'));
  perform private.ai_take_token(p_org_id, coalesce(p_user_id::text, 'key:' || p_api_key_id::text, 'service'),
                                private.ai_plan_limit(v_plan, 'ai_member_requests_per_minute'));

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

-- ---------------------------------------------------------------------------
-- 3. Token buckets over any period
-- ---------------------------------------------------------------------------

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

-- The gateway's per-minute buckets are now one case of the above.
create or replace function private.ai_take_token(p_org_id uuid, p_subject text, p_per_minute bigint) returns void
language plpgsql security definer
set search_path = ''
as $$
begin
  if p_per_minute = 0 then
    raise exception 'AI is not included in this plan' using errcode = 'PT402';
  end if;
  perform private.ai_take_token(p_org_id, p_subject, p_per_minute, interval '1 minute', 'AI requests per minute');
end
$$;
revoke all on function private.ai_take_token(uuid, text, bigint, interval, text) from public;

-- ---------------------------------------------------------------------------
-- 4. A module's own route
-- ---------------------------------------------------------------------------

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

-- The tier or model route, as before, now choosing the chain and leaving the pricing to ai_route_of.
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
revoke all on function private.ai_route_of(text[], text, timestamptz) from public;
grant execute on function private.ai_route_of(text[], text, timestamptz) to authenticated, service_role;

-- ---------------------------------------------------------------------------
-- 5. Forgetting inputs
-- ---------------------------------------------------------------------------

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
revoke all on function private.ai_erase_job_inputs(uuid[]) from public;
grant execute on function private.ai_erase_job_inputs(uuid[]) to service_role;
