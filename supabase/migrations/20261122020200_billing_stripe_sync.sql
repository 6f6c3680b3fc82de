-- Billing, part 3: what the Stripe webhook and the billing routes need beyond part 2.
--   * billing's outbox event types
--   * billing.credit_purchases: credit packs bought through Checkout, so a refund or dispute
--     of the payment can claw back the right credits (a charge names its payment intent, the
--     pack's grant names its checkout session; this table ties the two)
--   * billing.summary(org): plan, subscription, entitlements, usage and credits in one call

insert into notify.event_types (type, module, description, sensitive) values
  ('billing.subscription_changed', 'billing', 'The org''s subscription started, changed status or plan, or ended', false),
  ('billing.credits_granted', 'billing', 'Credits were added to the org (a subscription month or a credit pack)', false),
  ('billing.credits_clawed_back', 'billing', 'Credits were taken back after a refund or dispute (any shortfall becomes debt)', true),
  ('billing.payment_failed', 'billing', 'A subscription invoice could not be paid', true),
  ('billing.payment_action_required', 'billing', 'A subscription invoice needs the customer to authenticate the payment', true)
on conflict (type) do nothing;

create table billing.credit_purchases (
  checkout_session_id text primary key,
  org_id uuid not null references public.orgs (id) on delete cascade,
  payment_intent_id text unique,
  price_id text,
  product_id text,
  quantity int not null default 1 check (quantity > 0),
  credits bigint not null check (credits > 0),
  amount_total bigint,
  currency text check (currency ~ '^[a-z]{3}$'),
  grant_id uuid references billing.credit_grants (id) on delete set null,
  credits_clawed_back bigint not null default 0,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint clawed_back_in_range check (credits_clawed_back between 0 and credits)
);
create index credit_purchases_org_id_idx on billing.credit_purchases (org_id, created_at desc);
create index credit_purchases_grant_id_idx on billing.credit_purchases (grant_id);
comment on table billing.credit_purchases is 'Credit packs bought through Stripe Checkout (one row per paid session). Refunds and disputes of the payment claw back the refunded share of the credits.';
comment on column billing.credit_purchases.credits is 'Credits granted: the product''s credits (metadata plinth_credits) times the quantity.';
comment on column billing.credit_purchases.credits_clawed_back is 'Credits already taken back for refunds or a dispute of this payment.';
comment on column billing.credit_purchases.grant_id is 'The pack grant in the credits ledger (its source_ref is the checkout session id).';

create trigger credit_purchases_updated_at before update on billing.credit_purchases
  for each row execute function private.set_updated_at();

alter table billing.credit_purchases enable row level security;
revoke all on billing.credit_purchases from anon, authenticated;
grant all on billing.credit_purchases to service_role;
grant select on billing.credit_purchases to authenticated;
create policy "billing managers read their org's credit purchases" on billing.credit_purchases
  for select to authenticated using (org_id in (select private.org_ids_with_permission('billing.manage')));

-- ---------------------------------------------------------------------------
-- billing.summary: one call for a billing page
-- ---------------------------------------------------------------------------

create or replace function billing.summary(p_org_id uuid) returns jsonb
language plpgsql stable security definer
set search_path = ''
as $$
declare
  v_plan text;
  v_sub jsonb;
  v_entitlements jsonb;
  v_seats bigint;
  v_endpoints bigint;
  v_credits jsonb;
begin
  if not private.has_permission(p_org_id, 'billing.manage') then
    if exists (select 1 from private.accessible_org_ids() x where x = p_org_id) then
      raise exception 'billing needs the billing.manage permission' using errcode = '42501';
    end if;
    raise exception 'org not found' using errcode = 'PT404';
  end if;

  v_plan := billing.current_plan(p_org_id);

  -- The live subscription (the one the plan comes from), else the most recent one.
  select to_jsonb(x) into v_sub from (
    select s.id, s.status, s.plan_key, s.price_id, s.quantity, s.current_period_start, s.current_period_end,
           s.cancel_at_period_end, s.canceled_at, s.trial_end
    from billing.subscriptions s
    where s.org_id = p_org_id
    order by (s.status in ('trialing', 'active', 'past_due') and s.plan_key is not null) desc,
             s.current_period_end desc nulls last, s.updated_at desc
    limit 1) x;

  select coalesce(jsonb_agg(jsonb_build_object('key', e.key, 'enabled', e.enabled, 'limit', e.limit_value,
                                               'description', e.description) order by e.key), '[]'::jsonb)
    into v_entitlements
  from billing.entitlements e where e.plan_key = v_plan;

  select (select count(*) from public.org_members m where m.org_id = p_org_id)
       + (select count(*) from public.invitations i
          where i.org_id = p_org_id and i.accepted_at is null and i.revoked_at is null and i.expires_at > now())
    into v_seats;

  -- Outbound webhooks are another module: count them only where it is installed.
  if to_regclass('notify.webhook_endpoints') is not null then
    execute 'select count(*) from notify.webhook_endpoints where org_id = $1' into v_endpoints using p_org_id;
  end if;

  select jsonb_build_object('balance', coalesce(a.balance, 0), 'reserved', coalesce(a.reserved, 0),
                            'available', coalesce(a.balance - a.reserved, 0), 'debt', coalesce(a.debt, 0))
    into v_credits
  from (select 1) one left join billing.credit_accounts a on a.org_id = p_org_id;

  return jsonb_build_object(
    'org_id', p_org_id,
    'plan', (select jsonb_build_object('key', p.key, 'name', p.name) from billing.plans p where p.key = v_plan),
    'subscription', v_sub,
    'entitlements', v_entitlements,
    'usage', jsonb_build_object(
      'seats', jsonb_build_object('used', v_seats, 'limit', billing.limit_of(p_org_id, 'seats')),
      'webhook_endpoints', jsonb_build_object('used', v_endpoints, 'limit', billing.limit_of(p_org_id, 'webhook_endpoints'))),
    'credits', v_credits);
end
$$;
comment on function billing.summary(uuid) is 'For a billing page: the org''s plan, subscription, entitlements, usage against its limits and credit balance. Needs billing.manage (42501); PT404 for orgs the caller is not in.';
revoke all on function billing.summary(uuid) from public, anon;
grant execute on function billing.summary(uuid) to authenticated, service_role;
