-- AI gateway, part 1: the catalog admins edit in Studio (providers, models, deployments,
-- versioned prices, tiers), org policy and routes, shared deployment health (cooldowns), and
-- the plan's AI entitlements. Keys never sit in a row: a provider names the env var or Vault
-- secret that holds its key.

create schema if not exists ai;
grant usage on schema ai to authenticated, service_role;
comment on schema ai is 'Plinth AI gateway: provider catalog, prices, tiers, org policy, jobs, attempts and usage.';

create table ai.providers (
  id text primary key check (id ~ '^[a-z][a-z0-9_-]{1,39}$'),
  kind text not null check (kind in ('openai', 'anthropic', 'replicate', 'stability', 'runway', 'did', 'local')),
  base_url text check (base_url ~ '^https?://'),
  api_key_secret text check (api_key_secret ~ '^[A-Za-z_][A-Za-z0-9_]*$'),
  webhook_secret text check (webhook_secret ~ '^[A-Za-z_][A-Za-z0-9_]*$'),
  timeout_ms int not null default 60000 check (timeout_ms between 100 and 600000),
  enabled boolean not null default true,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
comment on table ai.providers is 'AI providers the gateway can call. Admin-edited; clients never read it. A key never sits here: api_key_secret names the env var (edge function secret) or Vault secret that holds it.';
comment on column ai.providers.kind is 'Wire format and adapter: openai (also any OpenAI-compatible API), anthropic, replicate, stability, runway, did, or local (deterministic output, no network).';
comment on column ai.providers.base_url is 'API root as the adapter wants it (e.g. https://api.openai.com/v1); null = the SDK default. The env var PLINTH_AI_<ID>_BASE_URL overrides it (local fakes).';
comment on column ai.providers.api_key_secret is 'Name of the env var or Vault secret holding the API key; null for the local provider.';
comment on column ai.providers.webhook_secret is 'Name of the env var or Vault secret holding the provider''s webhook signing secret (Replicate), if it calls back.';
comment on column ai.providers.timeout_ms is 'Per-call timeout. A timed-out call is retried or falls back; a timed-out async submit becomes outcome-unknown.';
comment on column ai.providers.enabled is 'Off: no deployment of this provider is routed to.';

create table ai.models (
  id text primary key check (id ~ '^[a-z0-9][a-z0-9._:/-]{0,99}$'),
  modality text not null check (modality in ('text', 'image', 'video', 'audio', 'embedding', 'moderation')),
  capabilities text[] not null default '{}',
  context_window int check (context_window > 0),
  max_output int check (max_output > 0),
  description text not null default '',
  enabled boolean not null default true,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
comment on table ai.models is 'Models clients can ask for by name (or reach through a tier). One model may be served by several deployments.';
comment on column ai.models.id is 'The public name clients use, e.g. gpt-4o-mini; also what the OpenAI-compatible endpoint lists.';
comment on column ai.models.capabilities is 'What the model can do beyond its modality: stream, json, vision, image_to_video, talking_photo, text_to_speech.';
comment on column ai.models.context_window is 'Input plus output tokens the model accepts (text); requests that cannot fit skip it.';
comment on column ai.models.max_output is 'Most output tokens (text) the model produces; caps max_tokens and the worst-case reservation.';

create table ai.deployments (
  id text primary key check (id ~ '^[a-z0-9][a-z0-9._:/-]{0,99}$'),
  model_id text not null references ai.models (id) on delete cascade,
  provider_id text not null references ai.providers (id) on delete cascade,
  provider_model text not null check (length(provider_model) between 1 and 200),
  priority int not null default 100,
  policy_alternative boolean not null default false,
  enabled boolean not null default true,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create index deployments_model_idx on ai.deployments (model_id, priority);
create index deployments_provider_idx on ai.deployments (provider_id);
comment on table ai.deployments is 'A model at a provider: what the router actually calls. A model asked for by name routes through its deployments by priority.';
comment on column ai.deployments.provider_model is 'The model''s name at the provider (e.g. gpt-4o-mini-2024-07-18, black-forest-labs/flux-schnell).';
comment on column ai.deployments.priority is 'Order among the deployments of one model, lowest first.';
comment on column ai.deployments.policy_alternative is 'May take a request that another deployment refused on content policy. Refusals fall back only to such deployments.';

create table ai.prices (
  id uuid primary key default gen_random_uuid(),
  deployment_id text not null references ai.deployments (id) on delete cascade,
  unit text not null check (unit in ('input_token', 'output_token', 'cached_input_token', 'reasoning_token',
                                     'image', 'video_second', 'audio_second', 'character', 'call')),
  variant text not null default '' check (length(variant) <= 100),
  per_units bigint not null default 1 check (per_units > 0),
  provider_cost_micros bigint not null check (provider_cost_micros >= 0),
  currency char(3) not null default 'USD' check (currency ~ '^[A-Z]{3}$'),
  credits bigint not null check (credits >= 0),
  effective_from timestamptz not null default now(),
  created_at timestamptz not null default now(),
  unique (deployment_id, unit, variant, effective_from)
);
comment on table ai.prices is 'Versioned prices per deployment and unit. Add a row with a later effective_from to change a price; a job is priced from the rows in force when it was submitted. A deployment without a price for what a request needs is refused (fail closed).';
comment on column ai.prices.unit is 'What is counted: input_token, output_token, cached_input_token and reasoning_token (parts of input and output, billed at their own rate when priced), image, video_second, audio_second, character (speech input), call.';
comment on column ai.prices.variant is 'Narrows the price: image size/quality (1024x1024/standard), video resolution (720p). Empty = any.';
comment on column ai.prices.per_units is 'How many units the two prices are for (1000000 for token prices per million).';
comment on column ai.prices.provider_cost_micros is 'What the provider charges us for per_units units, in millionths of currency.';
comment on column ai.prices.credits is 'What we charge the org for per_units units, in credits. Kept apart from provider cost.';
comment on column ai.prices.effective_from is 'The row is in force from this time until a later row for the same deployment, unit and variant.';

create table ai.tiers (
  modality text not null check (modality in ('text', 'image', 'video', 'audio', 'embedding', 'moderation')),
  tier text not null check (tier in ('economy', 'balanced', 'premium')),
  position int not null check (position >= 0),
  deployment_id text not null references ai.deployments (id) on delete cascade,
  primary key (modality, tier, position)
);
create index tiers_deployment_idx on ai.tiers (deployment_id);
comment on table ai.tiers is 'The default route of each quality tier per modality: deployments in order, the first that is healthy answers and the rest are its fallbacks. An org''s own ai.org_routes replace them for that org.';

create table ai.org_routes (
  org_id uuid not null references public.orgs (id) on delete cascade,
  modality text not null check (modality in ('text', 'image', 'video', 'audio', 'embedding', 'moderation')),
  tier text not null check (tier in ('economy', 'balanced', 'premium')),
  position int not null check (position >= 0),
  deployment_id text not null references ai.deployments (id) on delete cascade,
  primary key (org_id, modality, tier, position)
);
create index org_routes_deployment_idx on ai.org_routes (deployment_id);
comment on table ai.org_routes is 'An org''s own route for a tier (an enterprise''s own deployments, say). When an org has rows for a modality and tier, they replace ai.tiers for it.';

create table ai.org_policies (
  org_id uuid primary key references public.orgs (id) on delete cascade,
  allowed_tiers text[] not null default '{economy,balanced,premium}'
    check (allowed_tiers <@ array['economy', 'balanced', 'premium']),
  allowed_models text[],
  moderate_input boolean not null default false,
  monthly_credit_cap bigint check (monthly_credit_cap >= 0),
  member_monthly_credit_cap bigint check (member_monthly_credit_cap >= 0),
  updated_at timestamptz not null default now()
);
comment on table ai.org_policies is 'How an org may use AI, within its plan: tiers and models allowed, input moderation, and monthly credit caps. No row = the defaults (every tier the plan allows, no extra caps).';
comment on column ai.org_policies.allowed_models is 'Models the org may ask for by name; null = any model. Tiers route regardless.';
comment on column ai.org_policies.moderate_input is 'Run every job''s text input through the moderation tier first; flagged input is refused without charge.';
comment on column ai.org_policies.monthly_credit_cap is 'Most credits AI may spend in a calendar month (UTC) for the whole org, computed from settled and held jobs; null = the plan''s ai_monthly_credit_cap.';
comment on column ai.org_policies.member_monthly_credit_cap is 'Most credits one member (or API key) may spend in a calendar month; null = no per-member cap.';

create table ai.deployment_health (
  deployment_id text primary key references ai.deployments (id) on delete cascade,
  cooldown_until timestamptz,
  cooldown_reason text,
  last_status int,
  last_error_class text,
  last_error_at timestamptz,
  last_success_at timestamptz,
  window_started_at timestamptz not null default now(),
  window_requests int not null default 0,
  window_failures int not null default 0,
  updated_at timestamptz not null default now()
);
comment on table ai.deployment_health is 'Shared by every worker and edge function: each deployment''s cooldown and its failure rate over the current one-minute window. cooldown_until only ever moves later (greatest()).';
comment on column ai.deployment_health.cooldown_until is 'Not routed to before this time (unless every deployment is cooling, which answers 429 with Retry-After).';
comment on column ai.deployment_health.window_requests is 'Calls in the window that started at window_started_at; the failure-rate rule needs at least 5.';

create trigger providers_updated_at before update on ai.providers for each row execute function private.set_updated_at();
create trigger models_updated_at before update on ai.models for each row execute function private.set_updated_at();
create trigger deployments_updated_at before update on ai.deployments for each row execute function private.set_updated_at();
create trigger org_policies_updated_at before update on ai.org_policies for each row execute function private.set_updated_at();

-- ---------------------------------------------------------------------------
-- Plan entitlements for AI
-- ---------------------------------------------------------------------------
insert into billing.entitlements (plan_key, key, enabled, limit_value, description) values
  ('free', 'ai_requests_per_minute', true, 10, 'AI requests per minute, per org (a token bucket)'),
  ('free', 'ai_member_requests_per_minute', true, 10, 'AI requests per minute, per member or API key'),
  ('free', 'ai_premium_tier', false, null, 'Use of the premium quality tier'),
  ('free', 'ai_monthly_credit_cap', true, null, 'Most credits AI may spend per month (null = only the balance limits it)'),
  ('pro', 'ai_requests_per_minute', true, 120, 'AI requests per minute, per org (a token bucket)'),
  ('pro', 'ai_member_requests_per_minute', true, 60, 'AI requests per minute, per member or API key'),
  ('pro', 'ai_premium_tier', true, null, 'Use of the premium quality tier'),
  ('pro', 'ai_monthly_credit_cap', true, null, 'Most credits AI may spend per month (null = only the balance limits it)'),
  ('team', 'ai_requests_per_minute', true, 600, 'AI requests per minute, per org (a token bucket)'),
  ('team', 'ai_member_requests_per_minute', true, 120, 'AI requests per minute, per member or API key'),
  ('team', 'ai_premium_tier', true, null, 'Use of the premium quality tier'),
  ('team', 'ai_monthly_credit_cap', true, null, 'Most credits AI may spend per month (null = only the balance limits it)');

-- ---------------------------------------------------------------------------
-- The default catalog. Prices are list prices at the time of writing; 1 credit = $0.01 at a
-- 2x margin. Providers without a key in the env are skipped (npm start points them at fakes).
-- ---------------------------------------------------------------------------
insert into ai.providers (id, kind, base_url, api_key_secret, webhook_secret, timeout_ms, enabled) values
  ('openai', 'openai', null, 'OPENAI_API_KEY', null, 60000, true),
  ('anthropic', 'anthropic', null, 'ANTHROPIC_API_KEY', null, 60000, true),
  ('stability', 'stability', 'https://api.stability.ai', 'STABILITY_API_KEY', null, 60000, true),
  ('replicate', 'replicate', null, 'REPLICATE_API_TOKEN', 'REPLICATE_WEBHOOK_SECRET', 30000, true),
  ('runway', 'runway', 'https://api.dev.runwayml.com', 'RUNWAY_API_KEY', null, 30000, true),
  ('did', 'did', 'https://api.d-id.com', 'DID_API_KEY', null, 30000, true),
  ('local', 'local', null, null, null, 10000, false);

insert into ai.models (id, modality, capabilities, context_window, max_output, description) values
  ('gpt-4o-mini', 'text', '{stream,json,vision}', 128000, 16384, 'OpenAI''s small, fast model'),
  ('gpt-4o', 'text', '{stream,json,vision}', 128000, 16384, 'OpenAI''s flagship multimodal model'),
  ('claude-sonnet-4-5', 'text', '{stream,json,vision}', 200000, 64000, 'Anthropic''s balanced model'),
  ('text-embedding-3-small', 'embedding', '{}', 8191, null, 'OpenAI embeddings, 1536 dimensions'),
  ('omni-moderation-latest', 'moderation', '{}', null, null, 'OpenAI moderation'),
  ('gpt-image-1', 'image', '{}', null, null, 'OpenAI image generation'),
  ('stable-image-core', 'image', '{}', null, null, 'Stability AI Stable Image Core'),
  ('flux-schnell', 'image', '{}', null, null, 'Black Forest Labs FLUX.1 [schnell] on Replicate'),
  ('gen4-turbo', 'video', '{image_to_video}', null, null, 'Runway Gen-4 Turbo image to video'),
  ('did-talks', 'video', '{talking_photo}', null, null, 'D-ID talking photo'),
  ('tts-1', 'audio', '{text_to_speech}', null, null, 'OpenAI text to speech'),
  ('local-text', 'text', '{stream,json}', 32000, 4096, 'Deterministic local text (keyless development)'),
  ('local-image', 'image', '{}', null, null, 'Deterministic local PNG (keyless development)'),
  ('local-video', 'video', '{image_to_video,talking_photo}', null, null, 'Deterministic local MP4 (keyless development)'),
  ('local-audio', 'audio', '{text_to_speech}', null, null, 'Deterministic local WAV (keyless development)'),
  ('local-embedding', 'embedding', '{}', 32000, null, 'Deterministic local vectors (keyless development)'),
  ('local-moderation', 'moderation', '{}', null, null, 'Local moderation: flags inputs containing FLAGME');

insert into ai.deployments (id, model_id, provider_id, provider_model, priority, policy_alternative) values
  ('openai/gpt-4o-mini', 'gpt-4o-mini', 'openai', 'gpt-4o-mini', 10, false),
  ('openai/gpt-4o', 'gpt-4o', 'openai', 'gpt-4o', 10, false),
  ('anthropic/claude-sonnet-4-5', 'claude-sonnet-4-5', 'anthropic', 'claude-sonnet-4-5', 10, true),
  ('openai/text-embedding-3-small', 'text-embedding-3-small', 'openai', 'text-embedding-3-small', 10, false),
  ('openai/omni-moderation-latest', 'omni-moderation-latest', 'openai', 'omni-moderation-latest', 10, false),
  ('openai/gpt-image-1', 'gpt-image-1', 'openai', 'gpt-image-1', 10, false),
  ('stability/stable-image-core', 'stable-image-core', 'stability', 'core', 10, false),
  ('replicate/flux-schnell', 'flux-schnell', 'replicate', 'black-forest-labs/flux-schnell', 10, true),
  ('runway/gen4-turbo', 'gen4-turbo', 'runway', 'gen4_turbo', 10, false),
  ('did/talks', 'did-talks', 'did', 'talks', 10, false),
  ('openai/tts-1', 'tts-1', 'openai', 'tts-1', 10, false),
  ('local/text', 'local-text', 'local', 'local-text', 10, true),
  ('local/image', 'local-image', 'local', 'local-image', 10, true),
  ('local/video', 'local-video', 'local', 'local-video', 10, true),
  ('local/audio', 'local-audio', 'local', 'local-audio', 10, false),
  ('local/embedding', 'local-embedding', 'local', 'local-embedding', 10, false),
  ('local/moderation', 'local-moderation', 'local', 'local-moderation', 10, false);

insert into ai.prices (deployment_id, unit, variant, per_units, provider_cost_micros, credits, effective_from) values
  ('openai/gpt-4o-mini', 'input_token', '', 1000000, 150000, 30, '2026-01-01'),
  ('openai/gpt-4o-mini', 'cached_input_token', '', 1000000, 75000, 15, '2026-01-01'),
  ('openai/gpt-4o-mini', 'output_token', '', 1000000, 600000, 120, '2026-01-01'),
  ('openai/gpt-4o', 'input_token', '', 1000000, 2500000, 500, '2026-01-01'),
  ('openai/gpt-4o', 'cached_input_token', '', 1000000, 1250000, 250, '2026-01-01'),
  ('openai/gpt-4o', 'output_token', '', 1000000, 10000000, 2000, '2026-01-01'),
  ('anthropic/claude-sonnet-4-5', 'input_token', '', 1000000, 3000000, 600, '2026-01-01'),
  ('anthropic/claude-sonnet-4-5', 'cached_input_token', '', 1000000, 300000, 60, '2026-01-01'),
  ('anthropic/claude-sonnet-4-5', 'output_token', '', 1000000, 15000000, 3000, '2026-01-01'),
  ('openai/text-embedding-3-small', 'input_token', '', 1000000, 20000, 4, '2026-01-01'),
  ('openai/omni-moderation-latest', 'call', '', 1, 0, 0, '2026-01-01'),
  ('openai/gpt-image-1', 'image', '1024x1024/medium', 1, 42000, 9, '2026-01-01'),
  ('openai/gpt-image-1', 'image', '', 1, 167000, 34, '2026-01-01'),
  ('stability/stable-image-core', 'image', '', 1, 30000, 6, '2026-01-01'),
  ('replicate/flux-schnell', 'image', '', 1, 3000, 1, '2026-01-01'),
  ('runway/gen4-turbo', 'video_second', '', 1, 50000, 10, '2026-01-01'),
  ('did/talks', 'video_second', '', 1, 100000, 20, '2026-01-01'),
  ('openai/tts-1', 'character', '', 1000000, 15000000, 3000, '2026-01-01'),
  ('local/text', 'input_token', '', 1000000, 0, 100, '2026-01-01'),
  ('local/text', 'output_token', '', 1000000, 0, 400, '2026-01-01'),
  ('local/image', 'image', '', 1, 0, 2, '2026-01-01'),
  ('local/video', 'video_second', '', 1, 0, 5, '2026-01-01'),
  ('local/audio', 'character', '', 1000, 0, 1, '2026-01-01'),
  ('local/embedding', 'input_token', '', 1000000, 0, 10, '2026-01-01'),
  ('local/moderation', 'call', '', 1, 0, 0, '2026-01-01');

insert into ai.tiers (modality, tier, position, deployment_id) values
  ('text', 'economy', 0, 'openai/gpt-4o-mini'),
  ('text', 'balanced', 0, 'openai/gpt-4o'),
  ('text', 'balanced', 1, 'anthropic/claude-sonnet-4-5'),
  ('text', 'premium', 0, 'anthropic/claude-sonnet-4-5'),
  ('text', 'premium', 1, 'openai/gpt-4o'),
  ('image', 'economy', 0, 'replicate/flux-schnell'),
  ('image', 'economy', 1, 'stability/stable-image-core'),
  ('image', 'balanced', 0, 'stability/stable-image-core'),
  ('image', 'balanced', 1, 'openai/gpt-image-1'),
  ('image', 'premium', 0, 'openai/gpt-image-1'),
  ('image', 'premium', 1, 'stability/stable-image-core'),
  ('video', 'balanced', 0, 'did/talks'),
  ('video', 'premium', 0, 'runway/gen4-turbo'),
  ('audio', 'economy', 0, 'openai/tts-1'),
  ('audio', 'balanced', 0, 'openai/tts-1'),
  ('embedding', 'economy', 0, 'openai/text-embedding-3-small'),
  ('embedding', 'balanced', 0, 'openai/text-embedding-3-small'),
  ('moderation', 'economy', 0, 'openai/omni-moderation-latest');

-- ---------------------------------------------------------------------------
-- RLS and grants. The catalog is public to signed-in users (model pickers, price lists);
-- providers and health are for admins in Studio and the service role only.
-- ---------------------------------------------------------------------------
alter table ai.providers enable row level security;
alter table ai.models enable row level security;
alter table ai.deployments enable row level security;
alter table ai.prices enable row level security;
alter table ai.tiers enable row level security;
alter table ai.org_routes enable row level security;
alter table ai.org_policies enable row level security;
alter table ai.deployment_health enable row level security;

revoke all on ai.providers, ai.models, ai.deployments, ai.prices, ai.tiers, ai.org_routes, ai.org_policies,
  ai.deployment_health from anon, authenticated;
grant all on ai.providers, ai.models, ai.deployments, ai.prices, ai.tiers, ai.org_routes, ai.org_policies,
  ai.deployment_health to service_role;
grant select on ai.models, ai.deployments, ai.prices, ai.tiers, ai.org_routes, ai.org_policies to authenticated;
grant insert, update, delete on ai.org_routes, ai.org_policies to authenticated;

create policy "signed-in users read enabled models" on ai.models
  for select to authenticated using (enabled);
create policy "signed-in users read enabled deployments" on ai.deployments
  for select to authenticated using (enabled);
create policy "signed-in users read prices" on ai.prices
  for select to authenticated using (true);
create policy "signed-in users read the default tiers" on ai.tiers
  for select to authenticated using (true);

create policy "members read their org's routes" on ai.org_routes
  for select to authenticated using (org_id in (select private.accessible_org_ids()));
create policy "org managers add routes" on ai.org_routes
  for insert to authenticated with check (org_id in (select private.org_ids_with_permission('org.manage')));
create policy "org managers change routes" on ai.org_routes
  for update to authenticated
  using (org_id in (select private.org_ids_with_permission('org.manage')))
  with check (org_id in (select private.org_ids_with_permission('org.manage')));
create policy "org managers remove routes" on ai.org_routes
  for delete to authenticated using (org_id in (select private.org_ids_with_permission('org.manage')));

create policy "members read their org's AI policy" on ai.org_policies
  for select to authenticated using (org_id in (select private.accessible_org_ids()));
create policy "org managers set the AI policy" on ai.org_policies
  for insert to authenticated with check (org_id in (select private.org_ids_with_permission('org.manage')));
create policy "org managers change the AI policy" on ai.org_policies
  for update to authenticated
  using (org_id in (select private.org_ids_with_permission('org.manage')))
  with check (org_id in (select private.org_ids_with_permission('org.manage')));
create policy "org managers remove the AI policy" on ai.org_policies
  for delete to authenticated using (org_id in (select private.org_ids_with_permission('org.manage')));

-- ---------------------------------------------------------------------------
-- Deployment health: cooldowns every worker shares
-- ---------------------------------------------------------------------------

/*
 * Records one call's outcome and returns the deployment's cooldown_until. Rules:
 * - 429, 401, 404, 408/timeouts and 5xx cool at once, for Retry-After (capped at 5 min) or 10 s;
 *   but a 429 never cools the only deployment a request could use (p_sole): it would fail
 *   every request instead of letting it wait.
 * - Any failures above half of at least 5 calls in the one-minute window cool for 30 s.
 * - Content policy, context window and bad requests never cool: they are the request's fault.
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
  if not p_ok then
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
revoke all on function private.ai_record_health(text, boolean, int, text, bigint, boolean) from public;
grant execute on function private.ai_record_health(text, boolean, int, text, bigint, boolean) to service_role;
