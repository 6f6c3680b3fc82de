-- Billing, part 1: the credits ledger, modelled on two-phase transfers.
--   * A grant adds credits (subscription, pack, promotional, manual); grants are drawn down by
--     priority (lower first), then by earliest expiry.
--   * reserve() holds credits against specific grants; settle() consumes up to the held amount
--     and releases the rest; void() and expiry release everything.
--   * A grant that expires while partly held loses its unheld part at once and the held part
--     when the reservation resolves, so held credits can always be settled.
--   * Every movement is an append-only entry with the balances after it, under a unique
--     idempotency key: the same operation applied twice moves credits once.
-- The operations are for the service role and for other modules' RPCs; none is client-callable.

create schema if not exists billing;
grant usage on schema billing to authenticated, service_role;
comment on schema billing is 'Plinth billing: plans, entitlements, Stripe mirror, credits ledger.';

create table billing.credit_accounts (
  org_id uuid primary key references public.orgs (id) on delete cascade,
  balance bigint not null default 0 check (balance >= 0),
  reserved bigint not null default 0 check (reserved >= 0),
  debt bigint not null default 0 check (debt >= 0),
  updated_at timestamptz not null default now(),
  constraint available_not_negative check (balance - reserved >= 0)
);
comment on table billing.credit_accounts is 'One credits account per org. balance = unexpired grant credits left; reserved = the part held by pending reservations; available = balance - reserved, never negative. debt = credits refunded or disputed after they were spent, repaid first from future grants.';

create table billing.credit_grants (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null references public.orgs (id) on delete cascade,
  category text not null check (category in ('subscription', 'pack', 'promotional', 'manual')),
  amount bigint not null check (amount > 0),
  remaining bigint not null,
  held bigint not null default 0,
  priority int not null default 100,
  effective_at timestamptz not null default now(),
  expires_at timestamptz,
  expired_at timestamptz,
  source_ref text,
  created_at timestamptz not null default now(),
  constraint remaining_in_range check (remaining between 0 and amount),
  constraint held_in_range check (held between 0 and remaining),
  constraint expiry_after_start check (expires_at is null or expires_at > effective_at)
);
-- No predicate on remaining/held: changing them then stays a HOT update (no index churn on
-- every reservation).
create index credit_grants_draw_idx on billing.credit_grants (org_id, priority, expires_at nulls last, created_at)
  where expired_at is null;
create index credit_grants_expiry_idx on billing.credit_grants (expires_at) where expired_at is null;
create unique index credit_grants_source_idx on billing.credit_grants (org_id, category, source_ref) where source_ref is not null;
comment on table billing.credit_grants is 'Credits added to an org, each drawn down separately. remaining counts down as credits are spent; held is the part reserved by pending reservations.';
comment on column billing.credit_grants.priority is 'Draw order: lower priorities are spent first, then earlier expiry.';
comment on column billing.credit_grants.source_ref is 'Where the grant came from (a Stripe invoice or checkout session id, a promo code): unique per org and category, so a source grants once.';
comment on column billing.credit_grants.expired_at is 'When the expiry job removed the grant''s unheld credits; later releases of held credits expire too.';

create table billing.credit_reservations (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null references public.orgs (id) on delete cascade,
  amount bigint not null check (amount > 0),
  status text not null default 'pending' check (status in ('pending', 'posted', 'voided', 'expired')),
  settled_amount bigint check (settled_amount between 0 and amount),
  idempotency_key text not null,
  ref text,
  expires_at timestamptz not null,
  created_at timestamptz not null default now(),
  resolved_at timestamptz,
  unique (org_id, idempotency_key),
  constraint resolved_when_not_pending check ((status = 'pending') = (resolved_at is null)),
  constraint settled_only_when_posted check ((status = 'posted') = (settled_amount is not null))
);
create index credit_reservations_pending_idx on billing.credit_reservations (expires_at) where status = 'pending';
comment on table billing.credit_reservations is 'Credits held for work in progress (an AI generation). Each resolves once: posted (settled, possibly for less), voided, or expired by the job when expires_at passes.';
comment on column billing.credit_reservations.ref is 'What the credits are for, e.g. an AI job id; free text for the caller.';

create table billing.credit_allocations (
  reservation_id uuid not null references billing.credit_reservations (id) on delete cascade,
  grant_id uuid not null references billing.credit_grants (id) on delete cascade,
  org_id uuid not null references public.orgs (id) on delete cascade,
  amount bigint not null check (amount > 0),
  draw_order int not null,
  primary key (reservation_id, grant_id)
);
create index credit_allocations_org_idx on billing.credit_allocations (org_id);
create index credit_allocations_grant_idx on billing.credit_allocations (grant_id);
comment on table billing.credit_allocations is 'Which grants a reservation holds credits from, and how many, in draw order.';

create table billing.credit_entries (
  id bigint generated always as identity primary key,
  org_id uuid not null references public.orgs (id) on delete cascade,
  kind text not null check (kind in ('grant', 'reserve', 'settle', 'release', 'expire', 'clawback', 'debt', 'debt_repaid')),
  balance_delta bigint not null,
  reserved_delta bigint not null,
  debt_delta bigint not null default 0,
  balance_after bigint not null,
  reserved_after bigint not null,
  debt_after bigint not null,
  -- Plain references, not foreign keys: grants and reservations are only ever deleted with
  -- their org (which deletes these entries too), and the journal stays cheap to append to.
  grant_id uuid,
  reservation_id uuid,
  idempotency_key text not null,
  created_at timestamptz not null default now(),
  unique (org_id, idempotency_key)
);
create index credit_entries_org_idx on billing.credit_entries (org_id, id desc);
comment on table billing.credit_entries is 'Append-only journal of every credits movement with the balances after it. The sums of the deltas equal the account''s balance, reserved and debt.';
comment on column billing.credit_entries.idempotency_key is 'Unique per org: the operation''s key plus the movement, so replaying an operation writes nothing new.';

create trigger credit_accounts_updated_at before update on billing.credit_accounts
  for each row execute function private.set_updated_at();

-- The journal never changes; only its org's deletion removes it (nested in the FK's trigger).
create trigger credit_entries_append_only before update or delete on billing.credit_entries
  for each row execute function private.audit_log_is_append_only();
create trigger credit_entries_no_truncate before truncate on billing.credit_entries
  for each statement execute function private.audit_log_is_append_only();

-- ---------------------------------------------------------------------------
-- Internals
-- ---------------------------------------------------------------------------

-- Locks (creating if needed) the org's account: every ledger operation on one org runs in turn.
create or replace function private.lock_credit_account(p_org_id uuid) returns billing.credit_accounts
language plpgsql security definer
set search_path = ''
as $$
declare
  v billing.credit_accounts;
begin
  select * into v from billing.credit_accounts where org_id = p_org_id for update;
  if not found then
    insert into billing.credit_accounts (org_id) values (p_org_id) on conflict (org_id) do nothing;
    select * into v from billing.credit_accounts where org_id = p_org_id for update;
  end if;
  return v;
end
$$;

-- Applies one movement to the account and journals it.
create or replace function private.credit_move(
  p_org_id uuid, p_kind text, p_balance_delta bigint, p_reserved_delta bigint, p_debt_delta bigint,
  p_key text, p_grant_id uuid default null, p_reservation_id uuid default null)
returns void
language plpgsql security definer
set search_path = ''
as $$
declare
  v billing.credit_accounts;
begin
  update billing.credit_accounts
  set balance = balance + p_balance_delta, reserved = reserved + p_reserved_delta, debt = debt + p_debt_delta
  where org_id = p_org_id
  returning * into v;
  insert into billing.credit_entries (org_id, kind, balance_delta, reserved_delta, debt_delta,
                                      balance_after, reserved_after, debt_after, grant_id, reservation_id, idempotency_key)
  values (p_org_id, p_kind, p_balance_delta, p_reserved_delta, p_debt_delta,
          v.balance, v.reserved, v.debt, p_grant_id, p_reservation_id, p_key);
end
$$;

-- Releases a resolved reservation's holds; consumes up to p_consume credits in draw order.
-- Released credits of a grant that has already expired expire now; released credits of a live
-- grant repay debt first (a claw-back that met held credits recorded them as debt).
create or replace function private.credit_release(p_res billing.credit_reservations, p_consume bigint, p_key text)
returns void
language plpgsql security definer
set search_path = ''
as $$
declare
  a record;
  v_left bigint := p_consume;
  v_take bigint;
  v_expired bigint := 0;
  v_debt bigint;
  v_repay bigint;
  v_repaid bigint := 0;
begin
  select debt into v_debt from billing.credit_accounts where org_id = p_res.org_id;
  for a in
    select al.grant_id, al.amount, g.expired_at
    from billing.credit_allocations al join billing.credit_grants g on g.id = al.grant_id
    where al.reservation_id = p_res.id
    order by al.draw_order
    for update of g
  loop
    v_take := least(a.amount, v_left);
    v_left := v_left - v_take;
    v_repay := case when a.expired_at is null then least(a.amount - v_take, v_debt - v_repaid) else 0 end;
    v_repaid := v_repaid + v_repay;
    update billing.credit_grants
    set held = held - a.amount,
        remaining = remaining - v_take - v_repay
                    - case when a.expired_at is not null then a.amount - v_take else 0 end
    where id = a.grant_id;
    if a.expired_at is not null then
      v_expired := v_expired + (a.amount - v_take);
    end if;
  end loop;
  if p_consume > 0 then
    perform private.credit_move(p_res.org_id, 'settle', -p_consume, -p_consume, 0, p_key || ':settle', null, p_res.id);
  end if;
  if p_res.amount - p_consume > 0 then
    perform private.credit_move(p_res.org_id, 'release', 0, -(p_res.amount - p_consume), 0, p_key || ':release', null, p_res.id);
  end if;
  if v_expired > 0 then
    perform private.credit_move(p_res.org_id, 'expire', -v_expired, 0, 0, p_key || ':expire', null, p_res.id);
  end if;
  if v_repaid > 0 then
    perform private.credit_move(p_res.org_id, 'debt_repaid', -v_repaid, 0, -v_repaid, p_key || ':debt_repaid', null, p_res.id);
  end if;
end
$$;

revoke all on function private.lock_credit_account(uuid),
  private.credit_move(uuid, text, bigint, bigint, bigint, text, uuid, uuid),
  private.credit_release(billing.credit_reservations, bigint, text) from public;

-- ---------------------------------------------------------------------------
-- Operations (service role, and other modules' security-definer RPCs)
-- ---------------------------------------------------------------------------

create or replace function billing.grant_credits(
  p_org_id uuid, p_category text, p_amount bigint, p_idempotency_key text,
  p_priority int default null, p_expires_at timestamptz default null, p_source_ref text default null)
returns uuid
language plpgsql security definer
set search_path = ''
as $$
declare
  v_acct billing.credit_accounts;
  v_grant uuid;
  v_repay bigint;
begin
  if p_amount is null or p_amount <= 0 then
    raise exception 'a grant must be positive' using errcode = '22023';
  end if;
  if p_expires_at is not null and p_expires_at <= now() then
    raise exception 'a grant cannot expire in the past' using errcode = '22023';
  end if;
  v_acct := private.lock_credit_account(p_org_id);
  select e.grant_id into v_grant from billing.credit_entries e
  where e.org_id = p_org_id and e.idempotency_key = p_idempotency_key || ':grant';
  if found then
    return v_grant; -- already applied
  end if;
  if p_source_ref is not null and exists (select 1 from billing.credit_grants g
      where g.org_id = p_org_id and g.category = p_category and g.source_ref = p_source_ref) then
    return (select g.id from billing.credit_grants g
            where g.org_id = p_org_id and g.category = p_category and g.source_ref = p_source_ref);
  end if;
  -- Debt is repaid first, out of the new grant.
  v_repay := least(v_acct.debt, p_amount);
  insert into billing.credit_grants (org_id, category, amount, remaining, priority, expires_at, source_ref)
  values (p_org_id, p_category, p_amount, p_amount - v_repay,
          coalesce(p_priority, case p_category when 'promotional' then 10 when 'subscription' then 20
                                               when 'pack' then 30 else 40 end),
          p_expires_at, p_source_ref)
  returning id into v_grant;
  perform private.credit_move(p_org_id, 'grant', p_amount, 0, 0, p_idempotency_key || ':grant', v_grant);
  if v_repay > 0 then
    perform private.credit_move(p_org_id, 'debt_repaid', -v_repay, 0, -v_repay, p_idempotency_key || ':debt_repaid', v_grant);
  end if;
  return v_grant;
end
$$;
comment on function billing.grant_credits(uuid, text, bigint, text, int, timestamptz, text) is 'Adds credits. Idempotent by key and by (category, source_ref). Outstanding debt is repaid from the grant first.';

create or replace function billing.reserve_credits(
  p_org_id uuid, p_amount bigint, p_idempotency_key text, p_ttl interval default interval '15 minutes', p_ref text default null)
returns billing.credit_reservations
language plpgsql security definer
set search_path = ''
as $$
declare
  v_acct billing.credit_accounts;
  v_res billing.credit_reservations;
  g record;
  v_left bigint := p_amount;
  v_take bigint;
  v_order int := 0;
begin
  if p_amount is null or p_amount <= 0 then
    raise exception 'a reservation must be positive' using errcode = '22023';
  end if;
  if p_ttl <= interval '0' or p_ttl > interval '1 day' then
    raise exception 'a reservation lives between 1 second and 1 day' using errcode = '22023';
  end if;
  v_acct := private.lock_credit_account(p_org_id);
  select * into v_res from billing.credit_reservations r where r.org_id = p_org_id and r.idempotency_key = p_idempotency_key;
  if found then
    if v_res.amount <> p_amount then
      raise exception 'idempotency key % was used for a different amount', p_idempotency_key using errcode = '22023';
    end if;
    return v_res; -- already applied
  end if;
  if v_acct.balance - v_acct.reserved < p_amount then
    raise exception 'insufficient credits: % available, % needed', v_acct.balance - v_acct.reserved, p_amount
      using errcode = 'PT402';
  end if;
  insert into billing.credit_reservations (org_id, amount, idempotency_key, ref, expires_at)
  values (p_org_id, p_amount, p_idempotency_key, p_ref, now() + p_ttl)
  returning * into v_res;
  for g in
    select id, remaining - held as free from billing.credit_grants
    where org_id = p_org_id and expired_at is null and remaining > held
    order by priority, expires_at nulls last, created_at, id
    for update
  loop
    exit when v_left = 0;
    v_take := least(g.free, v_left);
    v_left := v_left - v_take;
    v_order := v_order + 1;
    update billing.credit_grants set held = held + v_take where id = g.id;
    insert into billing.credit_allocations (reservation_id, grant_id, org_id, amount, draw_order)
    values (v_res.id, g.id, p_org_id, v_take, v_order);
  end loop;
  if v_left > 0 then
    -- The account says enough is available but the grants disagree: never hand out credits that do not exist.
    raise exception 'credits ledger out of balance for org %', p_org_id using errcode = 'XX000';
  end if;
  perform private.credit_move(p_org_id, 'reserve', 0, p_amount, 0, 'reserve:' || p_idempotency_key, null, v_res.id);
  return v_res;
end
$$;
comment on function billing.reserve_credits(uuid, bigint, text, interval, text) is 'Holds credits for work about to run. Idempotent by key. Fails with PT402 (HTTP 402) when too few are available.';

-- Locks a reservation for resolving it, its account first (the order every operation uses).
create or replace function private.lock_reservation(p_reservation_id uuid) returns billing.credit_reservations
language plpgsql security definer
set search_path = ''
as $$
declare
  v_res billing.credit_reservations;
begin
  select * into v_res from billing.credit_reservations where id = p_reservation_id;
  if not found then
    raise exception 'reservation not found' using errcode = 'PT404';
  end if;
  perform private.lock_credit_account(v_res.org_id);
  select * into v_res from billing.credit_reservations where id = p_reservation_id for update;
  return v_res;
end
$$;
revoke all on function private.lock_reservation(uuid) from public;

create or replace function billing.settle_credits(p_reservation_id uuid, p_amount bigint)
returns billing.credit_reservations
language plpgsql security definer
set search_path = ''
as $$
declare
  v_res billing.credit_reservations;
begin
  v_res := private.lock_reservation(p_reservation_id);
  if v_res.status = 'posted' and v_res.settled_amount = p_amount then
    return v_res; -- already applied
  end if;
  if v_res.status <> 'pending' then
    raise exception 'reservation is already %', v_res.status using errcode = '22023';
  end if;
  if p_amount is null or p_amount < 0 or p_amount > v_res.amount then
    raise exception 'settle between 0 and the reserved % credits', v_res.amount using errcode = '22023';
  end if;
  perform private.credit_release(v_res, p_amount, 'res:' || v_res.id);
  update billing.credit_reservations set status = 'posted', settled_amount = p_amount, resolved_at = now()
  where id = p_reservation_id returning * into v_res;
  return v_res;
end
$$;
comment on function billing.settle_credits(uuid, bigint) is 'Spends up to the reserved amount and releases the rest. Settling again with the same amount is a no-op.';

-- Resolves a pending reservation without spending (void, or expiry by the job).
create or replace function private.resolve_without_spending(p_reservation_id uuid, p_status text)
returns billing.credit_reservations
language plpgsql security definer
set search_path = ''
as $$
declare
  v_res billing.credit_reservations;
begin
  v_res := private.lock_reservation(p_reservation_id);
  if v_res.status = p_status then
    return v_res; -- already applied
  end if;
  if v_res.status <> 'pending' then
    raise exception 'reservation is already %', v_res.status using errcode = '22023';
  end if;
  perform private.credit_release(v_res, 0, 'res:' || v_res.id);
  update billing.credit_reservations set status = p_status, resolved_at = now()
  where id = p_reservation_id returning * into v_res;
  return v_res;
end
$$;
revoke all on function private.resolve_without_spending(uuid, text) from public;

create or replace function billing.void_credits(p_reservation_id uuid)
returns billing.credit_reservations
language sql security definer
set search_path = ''
as $$
  select * from private.resolve_without_spending(p_reservation_id, 'voided')
$$;
comment on function billing.void_credits(uuid) is 'Releases a pending reservation without spending. Voiding again is a no-op.';

-- Expires stale reservations and past-due grants; the worker runs it every minute. A grant
-- loses its unheld credits now and its held ones when their reservations resolve.
create or replace function billing.expire_credits(p_now timestamptz default now(), p_org_id uuid default null)
returns table (reservations int, grants int)
language plpgsql security definer
set search_path = ''
as $$
declare
  r record;
  v_res int := 0;
  v_grants int := 0;
  v_free bigint;
begin
  -- In org order (the order accounts are locked everywhere), and one failure does not stop the
  -- run: a reservation settled since the scan is simply skipped.
  for r in select id from billing.credit_reservations
           where status = 'pending' and expires_at <= p_now and (p_org_id is null or org_id = p_org_id) order by org_id, id loop
    begin
      perform private.resolve_without_spending(r.id, 'expired');
      v_res := v_res + 1;
    exception when invalid_parameter_value then
      null; -- resolved by someone else meanwhile
    end;
  end loop;
  for r in select id, org_id from billing.credit_grants
           where expired_at is null and expires_at <= p_now and (p_org_id is null or org_id = p_org_id) order by org_id, id loop
    perform private.lock_credit_account(r.org_id);
    select remaining - held into v_free from billing.credit_grants where id = r.id and expired_at is null for update;
    continue when not found;
    update billing.credit_grants set expired_at = p_now, remaining = held where id = r.id;
    if v_free > 0 then
      perform private.credit_move(r.org_id, 'expire', -v_free, 0, 0, 'expire:' || r.id, r.id);
    end if;
    v_grants := v_grants + 1;
  end loop;
  return query select v_res, v_grants;
end
$$;
comment on function billing.expire_credits(timestamptz, uuid) is 'Expires pending reservations past their expires_at and grants past theirs, for one org or (null) all. Safe to run any number of times.';

-- Refunds and disputes: take back what is still unspent (from the named grant first, then in
-- draw order) and record the rest as debt, repaid from future grants.
create or replace function billing.claw_back_credits(
  p_org_id uuid, p_amount bigint, p_idempotency_key text, p_grant_id uuid default null)
returns table (clawed_back bigint, debt bigint)
language plpgsql security definer
set search_path = ''
as $$
declare
  g record;
  v_left bigint := p_amount;
  v_take bigint;
  v_taken bigint := 0;
begin
  if p_amount is null or p_amount <= 0 then
    raise exception 'a claw-back must be positive' using errcode = '22023';
  end if;
  perform private.lock_credit_account(p_org_id);
  if exists (select 1 from billing.credit_entries e where e.org_id = p_org_id
             and e.idempotency_key in (p_idempotency_key || ':clawback', p_idempotency_key || ':debt')) then
    return query
      select coalesce(sum(-e.balance_delta) filter (where e.kind = 'clawback'), 0)::bigint,
             coalesce(sum(e.debt_delta) filter (where e.kind = 'debt'), 0)::bigint
      from billing.credit_entries e
      where e.org_id = p_org_id and e.idempotency_key in (p_idempotency_key || ':clawback', p_idempotency_key || ':debt');
    return;
  end if;
  for g in
    select id, remaining - held as free from billing.credit_grants
    where org_id = p_org_id and expired_at is null and remaining > held
    order by (id = p_grant_id) desc, priority, expires_at nulls last, created_at, id
    for update
  loop
    exit when v_left = 0;
    v_take := least(g.free, v_left);
    update billing.credit_grants set remaining = remaining - v_take where id = g.id;
    v_left := v_left - v_take;
    v_taken := v_taken + v_take;
  end loop;
  if v_taken > 0 then
    perform private.credit_move(p_org_id, 'clawback', -v_taken, 0, 0, p_idempotency_key || ':clawback', p_grant_id);
  end if;
  if v_left > 0 then
    perform private.credit_move(p_org_id, 'debt', 0, 0, v_left, p_idempotency_key || ':debt', p_grant_id);
  end if;
  return query select v_taken, v_left;
end
$$;
comment on function billing.claw_back_credits(uuid, bigint, text, uuid) is 'For refunds and disputes: removes up to p_amount unspent credits (the named grant first) and records the rest as debt. Idempotent by key.';

-- ---------------------------------------------------------------------------
-- Access
-- ---------------------------------------------------------------------------

revoke all on function
  billing.grant_credits(uuid, text, bigint, text, int, timestamptz, text),
  billing.reserve_credits(uuid, bigint, text, interval, text),
  billing.settle_credits(uuid, bigint),
  billing.void_credits(uuid),
  billing.expire_credits(timestamptz, uuid),
  billing.claw_back_credits(uuid, bigint, text, uuid)
  from public, anon, authenticated;
grant execute on function
  billing.grant_credits(uuid, text, bigint, text, int, timestamptz, text),
  billing.reserve_credits(uuid, bigint, text, interval, text),
  billing.settle_credits(uuid, bigint),
  billing.void_credits(uuid),
  billing.expire_credits(timestamptz, uuid),
  billing.claw_back_credits(uuid, bigint, text, uuid)
  to service_role;

alter table billing.credit_accounts enable row level security;
alter table billing.credit_grants enable row level security;
alter table billing.credit_reservations enable row level security;
alter table billing.credit_allocations enable row level security;
alter table billing.credit_entries enable row level security;
revoke all on billing.credit_accounts, billing.credit_grants, billing.credit_reservations,
  billing.credit_allocations, billing.credit_entries from anon, authenticated;
grant select on billing.credit_accounts, billing.credit_grants, billing.credit_reservations,
  billing.credit_allocations, billing.credit_entries to authenticated, service_role;

create policy "members read their org's credit balance" on billing.credit_accounts
  for select to authenticated using (org_id in (select private.accessible_org_ids()));
create policy "billing managers read their org's grants" on billing.credit_grants
  for select to authenticated using (org_id in (select private.org_ids_with_permission('billing.manage')));
create policy "billing managers read their org's reservations" on billing.credit_reservations
  for select to authenticated using (org_id in (select private.org_ids_with_permission('billing.manage')));
create policy "billing managers read their org's allocations" on billing.credit_allocations
  for select to authenticated using (org_id in (select private.org_ids_with_permission('billing.manage')));
create policy "billing managers read their org's ledger" on billing.credit_entries
  for select to authenticated using (org_id in (select private.org_ids_with_permission('billing.manage')));
