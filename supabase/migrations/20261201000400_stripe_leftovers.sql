-- Billing, part 4: the Stripe leftovers of issue #8.
--   * billing.stripe_events.ignored_reason: why an event changed nothing (an unlinked customer
--     whose event names no matching org, an object Stripe no longer has, a type we do not handle)
--   * billing.disputes: each dispute of a charge with the credits it took back, so a partial
--     dispute takes only its share and a won dispute gives back exactly what it took
--   * monthly credits for billing periods longer than a month (annual plans): one grant per
--     period month, from billing.grant_subscription_month (the paid invoice grants the month it
--     is paid in; the worker's billing.subscription_months job grants each following month)

alter table billing.stripe_events add column ignored_reason text;
comment on column billing.stripe_events.ignored_reason is 'Why an ignored event changed nothing: unhandled_type, object_missing (Stripe no longer has it), customer_not_linked (no org named by the customer''s metadata), org_mismatch (the event names another org than its customer''s metadata), org_not_found, no_customer.';

-- ---------------------------------------------------------------------------
-- Disputes
-- ---------------------------------------------------------------------------

create table billing.disputes (
  id text primary key,
  org_id uuid not null references public.orgs (id) on delete cascade,
  charge_id text not null,
  payment_intent_id text,
  amount bigint not null check (amount >= 0),
  currency text not null check (currency ~ '^[a-z]{3}$'),
  status text not null,
  reason text,
  credits_clawed_back bigint not null default 0 check (credits_clawed_back >= 0),
  clawed_at timestamptz,
  credits_restored bigint not null default 0 check (credits_restored >= 0),
  restored_at timestamptz,
  stripe_created timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint restored_within_clawed check (credits_restored <= credits_clawed_back)
);
create index disputes_org_id_idx on billing.disputes (org_id, created_at desc);
create index disputes_charge_id_idx on billing.disputes (charge_id);
comment on table billing.disputes is 'Disputes (chargebacks) of the org''s Stripe charges. A dispute takes back the credits of its share of the charge (credits × disputed amount / charge amount, rounded down); one closed as won (or an inquiry closed without a chargeback) gives them back.';
comment on column billing.disputes.amount is 'The disputed amount, in minor units of currency (at most the charge''s amount).';
comment on column billing.disputes.status is 'Stripe''s dispute status as last applied (needs_response, under_review, won, lost, warning_closed, …). A closed status (won, lost, warning_closed, prevented) is final.';
comment on column billing.disputes.credits_clawed_back is 'Credits this dispute took back when it was opened (its share, less what refunds had already taken).';
comment on column billing.disputes.clawed_at is 'When the dispute''s claw-back was applied; set once, so a redelivered or reordered event never takes twice.';
comment on column billing.disputes.credits_restored is 'Credits granted back when the dispute closed in the org''s favour: exactly credits_clawed_back.';
comment on column billing.disputes.restored_at is 'When the credits were granted back; set once.';

create trigger disputes_updated_at before update on billing.disputes
  for each row execute function private.set_updated_at();

alter table billing.disputes enable row level security;
revoke all on billing.disputes from anon, authenticated;
grant all on billing.disputes to service_role;
grant select on billing.disputes to authenticated;
create policy "billing managers read their org's disputes" on billing.disputes
  for select to authenticated using (org_id in (select private.org_ids_with_permission('billing.manage')));

-- ---------------------------------------------------------------------------
-- Monthly credits for periods longer than a month
-- ---------------------------------------------------------------------------

alter table billing.invoices add column subscription_period_start timestamptz;
comment on column billing.invoices.subscription_period_start is 'Start of the subscription period the invoice''s subscription line bills (not a proration); ties a refund of a longer-than-monthly invoice to that period''s monthly grants (source_ref <subscription>-period-<start>-month-<n>).';

-- Whether a billing period gets its credits month by month (longer than a month, e.g. a year)
-- rather than once per invoice. Month arithmetic is in UTC, as Stripe's billing anchors are.
create or replace function billing.period_is_monthly_schedule(p_period_start timestamptz, p_period_end timestamptz)
returns boolean
language sql immutable
set search_path = ''
as $$
  select p_period_end at time zone 'UTC' > (p_period_start at time zone 'UTC') + interval '1 month 1 day'
$$;
comment on function billing.period_is_monthly_schedule(timestamptz, timestamptz) is 'True for a billing period longer than a month (an annual plan): its plan''s monthly_ai_credits are granted once per period month instead of once per invoice.';

-- Grants the plan's monthly_ai_credits for the period month that contains p_now, once: the grant's
-- source_ref (and idempotency key) names the subscription, the period and the month, so the paid
-- invoice and every scheduled run agree on it. The month's credits expire when the month (or the
-- period, if sooner) ends. Returns the new grant's id, or null when nothing was granted (already
-- granted, p_now outside the period, or a plan without monthly credits).
create or replace function billing.grant_subscription_month(
  p_org_id uuid, p_subscription_id text, p_plan_key text,
  p_period_start timestamptz, p_period_end timestamptz, p_now timestamptz default now())
returns uuid
language plpgsql volatile
set search_path = ''
set timezone = 'UTC'
as $$
declare
  v_start timestamp := p_period_start at time zone 'UTC';
  v_end timestamp := p_period_end at time zone 'UTC';
  v_now timestamp := p_now at time zone 'UTC';
  v_age interval;
  v_k int;
  v_month_start timestamp;
  v_month_end timestamp;
  v_amount bigint;
  v_ref text;
  v_grant uuid;
begin
  if p_org_id is null or p_subscription_id is null or p_period_start is null or p_period_end is null
     or p_period_end <= p_period_start then
    raise exception 'a subscription month needs the org, the subscription and its period' using errcode = '22023';
  end if;
  if v_now < v_start or v_now >= v_end then
    return null;
  end if;
  select e.limit_value into v_amount from billing.entitlements e
  where e.plan_key = p_plan_key and e.key = 'monthly_ai_credits' and e.enabled;
  if coalesce(v_amount, 0) <= 0 then
    return null;
  end if;

  v_age := age(v_now, v_start);
  v_k := (extract(year from v_age) * 12 + extract(month from v_age))::int;
  -- age() and month addition clip month ends differently (Jan 31 + 1 month = Feb 28): settle on
  -- the addition, which is what the month boundaries are.
  while v_start + make_interval(months => v_k + 1) <= v_now loop
    v_k := v_k + 1;
  end loop;
  while v_k > 0 and v_start + make_interval(months => v_k) > v_now loop
    v_k := v_k - 1;
  end loop;
  v_month_start := v_start + make_interval(months => v_k);
  v_month_end := least(v_start + make_interval(months => v_k + 1), v_end);
  -- The period is in the key, so a refund of the period's invoice finds the months it bought.
  v_ref := p_subscription_id || '-period-' || to_char(v_start, 'YYYYMMDD"T"HH24MISS') || '-month-' || v_k;

  -- One grant per month even when the invoice and a scheduled run race.
  perform pg_advisory_xact_lock(hashtextextended('billing-month:' || v_ref, 0));
  if exists (select 1 from billing.credit_grants g
             where g.org_id = p_org_id and g.category = 'subscription' and g.source_ref = v_ref) then
    return null;
  end if;
  v_grant := billing.grant_credits(p_org_id, 'subscription', v_amount, 'subscription-month-' || v_ref, null,
                                   v_month_end at time zone 'UTC', v_ref);
  perform private.emit_event(p_org_id, 'billing.credits_granted', 'credit_grant', v_grant::text,
    jsonb_build_object('amount', v_amount, 'category', 'subscription', 'source_ref', v_ref));
  return v_grant;
end
$$;
comment on function billing.grant_subscription_month(uuid, text, text, timestamptz, timestamptz, timestamptz) is 'Grants the plan''s monthly_ai_credits for the period month containing p_now, once per subscription and period month (source_ref <subscription>-period-<period start, UTC>-month-<n>, n from 0); they expire at the month''s end. Null when nothing was granted.';

-- The scheduled side (worker job billing.subscription_months): every live subscription whose
-- period is longer than a month gets the current month's credits. A canceled, paused, unpaid or
-- past-due subscription gets nothing more; nor does one whose period has ended without renewal.
-- One subscription's failure is logged and does not stop the others.
create or replace function billing.grant_due_subscription_months(p_now timestamptz default now())
returns table (subscriptions int, granted int, failed int)
language plpgsql volatile
set search_path = ''
as $$
declare
  s record;
  v_seen int := 0;
  v_granted int := 0;
  v_failed int := 0;
begin
  for s in
    select x.id, x.org_id, x.plan_key, x.current_period_start, x.current_period_end
    from billing.subscriptions x
    where x.status in ('active', 'trialing') and x.plan_key is not null
      and x.current_period_start <= p_now and x.current_period_end > p_now
      and billing.period_is_monthly_schedule(x.current_period_start, x.current_period_end)
    order by x.id
  loop
    v_seen := v_seen + 1;
    begin
      if billing.grant_subscription_month(s.org_id, s.id, s.plan_key, s.current_period_start, s.current_period_end, p_now) is not null then
        v_granted := v_granted + 1;
      end if;
    exception when others then
      v_failed := v_failed + 1;
      raise warning 'monthly credits of subscription % failed: % (%)', s.id, sqlerrm, sqlstate;
    end;
  end loop;
  return query select v_seen, v_granted, v_failed;
end
$$;
comment on function billing.grant_due_subscription_months(timestamptz) is 'For the worker (billing.subscription_months, every 10 minutes): grants the current period month''s credits of every active or trialing subscription whose period is longer than a month. Safe to run any number of times.';

-- Partial index for the scheduled scan: only live subscriptions are looked at.
create index subscriptions_live_period_idx on billing.subscriptions (current_period_end)
  where status in ('active', 'trialing');

revoke all on function
  billing.period_is_monthly_schedule(timestamptz, timestamptz),
  billing.grant_subscription_month(uuid, text, text, timestamptz, timestamptz, timestamptz),
  billing.grant_due_subscription_months(timestamptz)
  from public, anon, authenticated;
grant execute on function
  billing.period_is_monthly_schedule(timestamptz, timestamptz),
  billing.grant_subscription_month(uuid, text, text, timestamptz, timestamptz, timestamptz),
  billing.grant_due_subscription_months(timestamptz)
  to service_role;
