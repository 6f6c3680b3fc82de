-- Billing, part 2: plans and entitlements (edited by admins in Studio), the Stripe catalog and
-- subscription mirror, billing history, and the Stripe event log that makes webhook
-- handling idempotent.

create table billing.plans (
  key text primary key check (key ~ '^[a-z][a-z0-9_]{1,31}$'),
  name text not null,
  description text,
  is_default boolean not null default false,
  sort int not null default 0,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create unique index plans_single_default_idx on billing.plans (is_default) where is_default;
comment on table billing.plans is 'Plans an org can be on. The default plan (free) applies to every org without a live subscription. Stripe products point at a plan through billing.products.plan_key.';

create table billing.entitlements (
  plan_key text not null references billing.plans (key) on update cascade on delete cascade,
  key text not null check (key ~ '^[a-z][a-z0-9_.]{1,63}$'),
  enabled boolean not null default true,
  limit_value bigint check (limit_value >= 0),
  description text,
  primary key (plan_key, key)
);
comment on table billing.entitlements is 'What each plan includes: feature flags (enabled) and limits (limit_value; null = unlimited). Other modules ask billing.entitled(org_id, key) and billing.limit_of(org_id, key).';

insert into billing.plans (key, name, description, is_default, sort) values
  ('free', 'Free', 'For trying things out', true, 0),
  ('pro', 'Pro', 'For professionals and small teams', false, 1),
  ('team', 'Team', 'For growing teams', false, 2);
insert into billing.entitlements (plan_key, key, enabled, limit_value, description) values
  ('free', 'seats', true, 3, 'Members plus pending invitations'),
  ('free', 'monthly_ai_credits', true, 100, 'Credits granted each billing month'),
  ('free', 'storage_gb', true, 1, 'Storage quota'),
  ('free', 'webhook_endpoints', true, 1, 'Outbound webhook endpoints'),
  ('free', 'custom_domain', false, null, 'Serve the product on the org''s own domain'),
  ('pro', 'seats', true, 10, 'Members plus pending invitations'),
  ('pro', 'monthly_ai_credits', true, 5000, 'Credits granted each billing month'),
  ('pro', 'storage_gb', true, 50, 'Storage quota'),
  ('pro', 'webhook_endpoints', true, 5, 'Outbound webhook endpoints'),
  ('pro', 'custom_domain', true, null, 'Serve the product on the org''s own domain'),
  ('team', 'seats', true, 50, 'Members plus pending invitations'),
  ('team', 'monthly_ai_credits', true, 25000, 'Credits granted each billing month'),
  ('team', 'storage_gb', true, 500, 'Storage quota'),
  ('team', 'webhook_endpoints', true, 20, 'Outbound webhook endpoints'),
  ('team', 'custom_domain', true, null, 'Serve the product on the org''s own domain');

-- Stripe catalog mirror (webhooks product.* / price.* and npm run billing:sync).
create table billing.products (
  id text primary key,
  name text not null,
  description text,
  active boolean not null default true,
  plan_key text references billing.plans (key) on update cascade on delete set null,
  credits bigint check (credits > 0),
  metadata jsonb not null default '{}',
  stripe_updated_at timestamptz,
  updated_at timestamptz not null default now()
);
create index products_plan_key_idx on billing.products (plan_key);
comment on table billing.products is 'Mirror of Stripe products. plan_key (from product metadata plinth_plan) ties a subscription product to a plan; credits (metadata plinth_credits) makes it a one-off credit pack.';

create table billing.prices (
  id text primary key,
  product_id text not null references billing.products (id) on delete cascade,
  currency text not null check (currency ~ '^[a-z]{3}$'),
  unit_amount bigint check (unit_amount >= 0),
  type text not null check (type in ('one_time', 'recurring')),
  recurring_interval text check (recurring_interval in ('day', 'week', 'month', 'year')),
  interval_count int,
  active boolean not null default true,
  lookup_key text,
  metadata jsonb not null default '{}',
  stripe_updated_at timestamptz,
  updated_at timestamptz not null default now()
);
create index prices_product_id_idx on billing.prices (product_id);
comment on table billing.prices is 'Mirror of Stripe prices, in minor units of their currency (usd, eur, inr, …).';

create table billing.customers (
  org_id uuid primary key references public.orgs (id) on delete cascade,
  stripe_customer_id text not null unique,
  email text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
comment on table billing.customers is 'The one Stripe customer of each org (created before the first checkout, with the org id in its metadata).';

create table billing.subscriptions (
  id text primary key,
  org_id uuid not null references public.orgs (id) on delete cascade,
  stripe_customer_id text not null,
  status text not null check (status in ('trialing', 'active', 'past_due', 'unpaid', 'canceled', 'incomplete', 'incomplete_expired', 'paused')),
  price_id text,
  plan_key text references billing.plans (key) on update cascade on delete set null,
  quantity int not null default 1 check (quantity >= 0),
  items jsonb not null default '[]',
  current_period_start timestamptz,
  current_period_end timestamptz,
  cancel_at_period_end boolean not null default false,
  canceled_at timestamptz,
  trial_end timestamptz,
  stripe_created timestamptz,
  watermark_created bigint not null default 0,
  watermark_event_id text not null default '',
  updated_at timestamptz not null default now()
);
create index subscriptions_org_id_idx on billing.subscriptions (org_id, status);
create index subscriptions_plan_key_idx on billing.subscriptions (plan_key);
comment on table billing.subscriptions is 'Mirror of the org''s Stripe subscriptions, following Stripe''s state machine. Only webhook handling writes it.';
comment on column billing.subscriptions.watermark_created is 'created (unix seconds) of the newest Stripe event applied; with watermark_event_id it keeps a stale event from overwriting newer state.';

create table billing.invoices (
  id text primary key,
  org_id uuid not null references public.orgs (id) on delete cascade,
  subscription_id text,
  status text,
  billing_reason text,
  currency text not null check (currency ~ '^[a-z]{3}$'),
  amount_due bigint not null default 0,
  amount_paid bigint not null default 0,
  hosted_invoice_url text,
  period_start timestamptz,
  period_end timestamptz,
  stripe_created timestamptz,
  watermark_created bigint not null default 0,
  watermark_event_id text not null default '',
  updated_at timestamptz not null default now()
);
create index invoices_org_id_idx on billing.invoices (org_id, stripe_created desc);
comment on table billing.invoices is 'Billing history: the org''s Stripe invoices, in minor units.';

create table billing.charges (
  id text primary key,
  org_id uuid not null references public.orgs (id) on delete cascade,
  invoice_id text,
  payment_intent_id text,
  currency text not null check (currency ~ '^[a-z]{3}$'),
  amount bigint not null,
  amount_refunded bigint not null default 0,
  status text,
  disputed boolean not null default false,
  credits_clawed_back bigint not null default 0 check (credits_clawed_back >= 0),
  stripe_created timestamptz,
  updated_at timestamptz not null default now()
);
create index charges_org_id_idx on billing.charges (org_id, stripe_created desc);
-- A pack purchase recorded after its payment's refund looks the charge up by payment intent.
create index charges_payment_intent_idx on billing.charges (payment_intent_id);
comment on table billing.charges is 'Payments behind invoices and credit packs, with refunds and disputes.';
comment on column billing.charges.credits_clawed_back is 'Subscription credits (of the invoice''s grant) already taken back for refunds or a dispute of this charge; packs track theirs in billing.credit_purchases.';

create table billing.stripe_events (
  id text primary key,
  type text not null,
  api_version text,
  stripe_created timestamptz not null,
  livemode boolean not null default false,
  status text not null check (status in ('processed', 'ignored')),
  object_id text,
  resolved_org_id uuid references public.orgs (id) on delete set null,
  received_at timestamptz not null default now()
);
create index stripe_events_resolved_org_idx on billing.stripe_events (resolved_org_id);
comment on column billing.stripe_events.resolved_org_id is 'The org the event was applied to, when it concerned one (a platform log, not tenant data).';
comment on table billing.stripe_events is 'Every Stripe event received, keyed by its id. Claimed and applied in one transaction, so an event is applied once even when Stripe delivers it twice at the same moment. Unknown types are recorded as ignored.';

create trigger plans_updated_at before update on billing.plans for each row execute function private.set_updated_at();
create trigger products_updated_at before update on billing.products for each row execute function private.set_updated_at();
create trigger prices_updated_at before update on billing.prices for each row execute function private.set_updated_at();
create trigger customers_updated_at before update on billing.customers for each row execute function private.set_updated_at();
create trigger subscriptions_updated_at before update on billing.subscriptions for each row execute function private.set_updated_at();
create trigger invoices_updated_at before update on billing.invoices for each row execute function private.set_updated_at();
create trigger charges_updated_at before update on billing.charges for each row execute function private.set_updated_at();

create trigger subscriptions_audit after insert or update or delete on billing.subscriptions
  for each row execute function private.audit_row();
create trigger customers_audit after insert or update or delete on billing.customers
  for each row execute function private.audit_row();

-- ---------------------------------------------------------------------------
-- Entitlement helpers, for other modules' RLS and RPCs
-- ---------------------------------------------------------------------------

-- The org's plan: its live subscription's, else the default plan.
-- A signed-in user learns only their own orgs' plans; the service role (and SQL without claims,
-- such as the worker's and other modules' RPCs) sees any.
create or replace function billing.current_plan(p_org_id uuid) returns text
language sql stable security definer
set search_path = ''
as $$
  select coalesce(
    (select s.plan_key from billing.subscriptions s
     where s.org_id = p_org_id and s.status in ('trialing', 'active', 'past_due') and s.plan_key is not null
     order by s.current_period_end desc nulls last limit 1),
    (select p.key from billing.plans p where p.is_default))
  where coalesce(auth.role(), 'service_role') = 'service_role'
     or p_org_id in (select private.member_org_ids())
$$;

create or replace function billing.entitled(p_org_id uuid, p_feature text) returns boolean
language sql stable security definer
set search_path = ''
as $$
  select coalesce((select e.enabled from billing.entitlements e
                   where e.plan_key = billing.current_plan(p_org_id) and e.key = p_feature), false)
$$;

-- A plan limit: null = unlimited; 0 when the plan does not include the feature.
create or replace function billing.limit_of(p_org_id uuid, p_key text) returns bigint
language sql stable security definer
set search_path = ''
as $$
  select case when e.enabled then e.limit_value else 0 end
  from (select billing.current_plan(p_org_id) as plan) c
  left join billing.entitlements e on e.plan_key = c.plan and e.key = p_key
$$;

comment on function billing.current_plan(uuid) is 'The org''s plan key: its live (trialing, active, past_due) subscription''s plan, else the default plan.';
comment on function billing.entitled(uuid, text) is 'Whether the org''s plan includes a feature.';
comment on function billing.limit_of(uuid, text) is 'The org''s plan limit for a key; null means unlimited, 0 not included.';
revoke all on function billing.current_plan(uuid), billing.entitled(uuid, text), billing.limit_of(uuid, text) from public, anon;
grant execute on function billing.current_plan(uuid), billing.entitled(uuid, text), billing.limit_of(uuid, text)
  to authenticated, service_role;

-- Seats now come from the plan (core's extension point; see private.assert_seat_available).
create or replace function private.seat_limit(p_org_id uuid) returns bigint
language sql stable security definer
set search_path = ''
as $$
  select billing.limit_of(p_org_id, 'seats')
$$;

-- ---------------------------------------------------------------------------
-- Access
-- ---------------------------------------------------------------------------

alter table billing.plans enable row level security;
alter table billing.entitlements enable row level security;
alter table billing.products enable row level security;
alter table billing.prices enable row level security;
alter table billing.customers enable row level security;
alter table billing.subscriptions enable row level security;
alter table billing.invoices enable row level security;
alter table billing.charges enable row level security;
alter table billing.stripe_events enable row level security;

revoke all on billing.plans, billing.entitlements, billing.products, billing.prices, billing.customers,
  billing.subscriptions, billing.invoices, billing.charges, billing.stripe_events from anon, authenticated;
grant all on billing.plans, billing.entitlements, billing.products, billing.prices, billing.customers,
  billing.subscriptions, billing.invoices, billing.charges, billing.stripe_events to service_role;
grant select on billing.plans, billing.entitlements, billing.products, billing.prices, billing.customers,
  billing.subscriptions, billing.invoices, billing.charges to authenticated;

create policy "signed-in users read the plans" on billing.plans for select to authenticated using (true);
create policy "signed-in users read the entitlements" on billing.entitlements for select to authenticated using (true);
create policy "signed-in users read active products" on billing.products for select to authenticated using (active);
create policy "signed-in users read active prices" on billing.prices for select to authenticated using (active);
create policy "members read their org's subscriptions" on billing.subscriptions
  for select to authenticated using (org_id in (select private.accessible_org_ids()));
create policy "billing managers read their org's customer" on billing.customers
  for select to authenticated using (org_id in (select private.org_ids_with_permission('billing.manage')));
create policy "billing managers read their org's invoices" on billing.invoices
  for select to authenticated using (org_id in (select private.org_ids_with_permission('billing.manage')));
create policy "billing managers read their org's charges" on billing.charges
  for select to authenticated using (org_id in (select private.org_ids_with_permission('billing.manage')));
