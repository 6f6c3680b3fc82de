-- Credits held at the account level ("Option A"): a reservation holds credits on the org's
-- account, not on specific grants.
--
--   * reserve_credits: one account update (reserved += amount, only if that many are available)
--     + the reservation row + its journal entry. No grant row is touched.
--   * settle_credits (and void, and expiry of a reservation): spends the settled amount from the
--     grants in draw order, releases the rest, journals as before (settle, release, expire,
--     debt_repaid) and lowers reserved.
--   * Draw order, at settle and charge: grants that have expired but still cover pending
--     reservations first (see below), then live grants by priority (p_priority; by default
--     promotional 10, subscription 20, pack 30, manual 40), then earliest expiry (none last),
--     then age.
--   * Expiry never takes credits below what is reserved, so a pending reservation can always
--     settle up to its amount. When a grant expires it loses what the account does not need to
--     cover its reservations (at most balance - reserved); the rest stays on the grant, counted
--     in credit_accounts.kept_expired, and is spent first by the settles that follow. As soon as
--     the account no longer needs those credits (a reservation resolves for less than its
--     amount, or a new grant covers the reservations), they expire: in that same transaction,
--     journaled as an expire entry. So kept_expired > 0 only while balance = reserved: expired
--     credits are never available for a new reservation or charge.
--   * Claw-back takes at most what is available (balance - reserved) from the grants (the named
--     one first, then draw order) and records the rest as debt; credits released later repay
--     that debt first (as before, when a claw-back met held credits).
--   * billing.credit_allocations stays a view with the same columns; it now shows which grants
--     would cover each pending reservation, in draw order, if the pending reservations settled
--     in the order they were made (a window-function allocation). Resolved reservations no
--     longer appear in it (no per-grant history is kept: the journal records per reservation).
--   * credit_grants.held and credit_reservations.holds (and the type billing.credit_hold) are
--     dropped: nothing holds a grant any more.
--
-- The hot functions (credit_draw, credit_resolve, reserve_credits, charge_credits) keep one
-- generic plan per statement for the session (plan_cache_mode = force_generic_plan) and set
-- enable_seqscan = off: a plan made while a table was still empty or small would keep
-- seq-scanning it as it grew, and the ledger reads rows only by key.
--
-- Row writes per reserve+settle of one credit: reserve 3 (account, reservation, entry); settle
-- 4 (account, reservation, grant, entry); all updates HOT. Before: 4 + 4.

-- ---------------------------------------------------------------------------
-- Schema
-- ---------------------------------------------------------------------------

drop view billing.credit_allocations;

alter table billing.credit_accounts add column kept_expired bigint not null default 0;
comment on column billing.credit_accounts.kept_expired is 'Credits of expired grants still counted in balance because pending reservations need them (balance - kept_expired < reserved). Spent first by the next settles; expires as soon as it is no longer needed, so it is non-zero only while balance = reserved. Equals the sum of remaining over the org''s expired grants.';
-- Before: an expired grant kept exactly its held credits.
update billing.credit_accounts a
set kept_expired = k.kept
from (select org_id, sum(remaining)::bigint as kept from billing.credit_grants
      where expired_at is not null and remaining > 0 group by org_id) k
where k.org_id = a.org_id;
alter table billing.credit_accounts drop constraint credit_accounts_in_range,
  add constraint credit_accounts_in_range check (reserved >= 0 and debt >= 0 and balance >= reserved and kept_expired between 0 and reserved);
comment on constraint credit_accounts_in_range on billing.credit_accounts is 'Nothing is negative, available (balance - reserved) never is either, and expired credits are kept only to cover reservations.';

alter table billing.credit_grants drop constraint credit_grants_in_range, drop column held,
  add constraint credit_grants_in_range check (remaining between 0 and amount);
comment on constraint credit_grants_in_range on billing.credit_grants is '0 <= remaining <= amount.';
comment on table billing.credit_grants is 'Credits added to an org, each drawn down separately in draw order. remaining counts down as credits are spent. Reservations hold credits on the account (credit_accounts.reserved), not on grants.';
comment on column billing.credit_grants.expired_at is 'When the expiry job expired the grant. Its remaining is then what the account still needs to cover pending reservations (counted in credit_accounts.kept_expired), and goes to 0 as they resolve.';
-- Expired grants that still cover reservations, found by org (no column a hot update changes).
create index credit_grants_expired_idx on billing.credit_grants (org_id, expired_at) where expired_at is not null;
comment on index billing.credit_grants_expired_idx is 'Expired grants by org: where settle and grant find the credits kept for reservations (no column a hot update changes, so spending stays HOT).';

alter table billing.credit_reservations drop column holds;
comment on table billing.credit_reservations is 'Credits held on the account for work in progress (an AI generation). Each resolves once: posted (settled, possibly for less), voided, or expired by the job when expires_at passes. Settling spends from the grants in draw order.';

-- ---------------------------------------------------------------------------
-- Internals
-- ---------------------------------------------------------------------------

drop function private.credit_draw(uuid, bigint, boolean);
drop type billing.credit_hold;

-- Spends p_amount credits from the org's grants: first those of expired grants kept to cover
-- reservations (p_kept of them; oldest expiry first), then live grants in draw order. The
-- caller holds the account's lock and has checked that the account covers it. Returns how many
-- came from expired grants.
create function private.credit_draw(p_org_id uuid, p_amount bigint, p_kept bigint)
returns bigint
language plpgsql security definer
set search_path = ''
set plan_cache_mode = force_generic_plan
set enable_seqscan = off
as $$
declare
  g record;
  v_left bigint := p_amount;
  v_take bigint;
  v_from_kept bigint := 0;
begin
  if p_kept > 0 then
    for g in
      select id, remaining from billing.credit_grants
      where org_id = p_org_id and expired_at is not null and remaining > 0
      order by expired_at, priority, expires_at nulls last, created_at, id
    loop
      exit when v_left = 0;
      v_take := least(g.remaining, v_left);
      update billing.credit_grants set remaining = remaining - v_take where id = g.id;
      v_left := v_left - v_take;
      v_from_kept := v_from_kept + v_take;
    end loop;
  end if;
  if v_left > 0 then
    for g in
      select id, remaining from billing.credit_grants
      where org_id = p_org_id and expired_at is null and remaining > 0
      order by priority, expires_at nulls last, created_at, id
    loop
      v_take := least(g.remaining, v_left);
      update billing.credit_grants set remaining = remaining - v_take where id = g.id;
      v_left := v_left - v_take;
      exit when v_left = 0;
    end loop;
  end if;
  if v_left > 0 then
    -- The account says enough is there but the grants disagree: never hand out credits that do not exist.
    raise exception 'credits ledger out of balance for org %', p_org_id using errcode = 'XX000';
  end if;
  return v_from_kept;
end
$$;
comment on function private.credit_draw(uuid, bigint, bigint) is 'Spends credits from an org''s grants: expired grants kept for reservations first, then live grants in draw order (priority, earliest expiry, age). Caller holds the account lock. Returns the part taken from expired grants.';

-- Expires p_amount of the credits expired grants keep for reservations (oldest expiry first),
-- once the account no longer needs them. The caller holds the account's lock, updates the
-- account and journals it.
create function private.credit_shed_expired(p_org_id uuid, p_amount bigint)
returns void
language plpgsql security definer
set search_path = ''
as $$
declare
  g record;
  v_left bigint := p_amount;
  v_take bigint;
begin
  for g in
    select id, remaining from billing.credit_grants
    where org_id = p_org_id and expired_at is not null and remaining > 0
    order by expired_at, priority, expires_at nulls last, created_at, id
  loop
    exit when v_left = 0;
    v_take := least(g.remaining, v_left);
    update billing.credit_grants set remaining = remaining - v_take where id = g.id;
    v_left := v_left - v_take;
  end loop;
  if v_left > 0 then
    raise exception 'credits ledger out of balance for org %', p_org_id using errcode = 'XX000';
  end if;
end
$$;
comment on function private.credit_shed_expired(uuid, bigint) is 'Expires credits that expired grants kept for reservations once they are no longer needed (oldest expiry first). Caller holds the account lock, updates kept_expired and balance, and journals.';

-- Resolves a reservation: spends p_consume from the grants in draw order and releases the
-- rest. Released credits first expire what expired grants no longer need to keep, then repay
-- debt (a claw-back that met reserved credits recorded them as debt).
-- The account is locked first, as everywhere (without debt or kept expired credits, by the
-- update that applies the resolution); the reservation is then claimed under that lock.
create or replace function private.credit_resolve(p_reservation_id uuid, p_status text, p_consume bigint)
returns billing.credit_reservations
language plpgsql security definer
set search_path = ''
set plan_cache_mode = force_generic_plan
set enable_seqscan = off
as $$
declare
  v_res billing.credit_reservations;
  v_org uuid;
  v_amount bigint;
  v_fast boolean := false;
  v_b bigint;
  v_r bigint;
  v_d bigint;
  v_k bigint;
  v_from_kept bigint := 0;
  v_free bigint;
  v_expired bigint := 0;
  v_repaid bigint := 0;
begin
  -- The common case in one statement: a pending reservation of an org without debt or kept
  -- expired credits. The account's update is also its lock; the reservation is claimed under
  -- it just below (the guard on reserved keeps a reservation resolved meanwhile from driving it
  -- negative). v_b, v_r: the account before.
  if p_consume >= 0 then
    update billing.credit_accounts a
    set balance = a.balance - p_consume, reserved = a.reserved - r.amount, updated_at = now()
    from billing.credit_reservations r
    where r.id = p_reservation_id and r.status = 'pending' and p_consume <= r.amount
      and a.org_id = r.org_id and a.debt = 0 and a.kept_expired = 0 and a.reserved >= r.amount
    returning a.org_id, a.balance + p_consume, a.reserved + r.amount into v_org, v_b, v_r;
    v_fast := found;
  end if;
  if not v_fast then
    select * into v_res from billing.credit_reservations where id = p_reservation_id;
    if not found then
      raise exception 'reservation not found' using errcode = 'PT404';
    end if;
    if v_res.status = 'pending' then
      if p_consume is null or p_consume < 0 or p_consume > v_res.amount then
        raise exception 'settle between 0 and the reserved % credits', v_res.amount using errcode = '22023';
      end if;
      v_org := v_res.org_id;
      select balance, reserved, debt, kept_expired into v_b, v_r, v_d, v_k
      from billing.credit_accounts where org_id = v_org for no key update;
    end if;
  end if;
  if v_fast or v_res.status = 'pending' then
    -- Under the account's lock, claim the reservation: only one resolution wins.
    update billing.credit_reservations
    set status = p_status, settled_amount = case when p_status = 'posted' then p_consume end, resolved_at = now()
    where id = p_reservation_id and status = 'pending'
    returning * into v_res;
    if found then
      v_amount := v_res.amount;
      if v_fast then
        if p_consume > 0 then
          -- Spend from the first grant in draw order when it covers it all (the common case); else draw.
          update billing.credit_grants c set remaining = c.remaining - p_consume
          from (select id from billing.credit_grants
                where org_id = v_org and expired_at is null and remaining > 0
                order by priority, expires_at nulls last, created_at, id limit 1) f
          where c.id = f.id and c.remaining >= p_consume;
          if not found then
            perform private.credit_draw(v_org, p_consume, 0);
          end if;
        end if;
        if p_consume = 0 or p_consume = v_amount then
          -- All spent or all released: one entry.
          insert into billing.credit_entries (org_id, operation, kind, balance_delta, reserved_delta, debt_delta,
                                              balance_after, reserved_after, debt_after, reservation_id, idempotency_key)
          values (v_org, 'resolve', case when p_consume = 0 then 'release' else 'settle' end, -p_consume, -v_amount, 0,
                  v_b - p_consume, v_r - v_amount, 0, v_res.id, v_res.id::text);
          return v_res;
        end if;
        insert into billing.credit_entries (org_id, operation, kind, balance_delta, reserved_delta, debt_delta,
                                            balance_after, reserved_after, debt_after, reservation_id, idempotency_key)
        select v_org, 'resolve', m.kind, m.db, m.dr, 0, m.ba, m.ra, 0, v_res.id, v_res.id::text
        from (values
          (1, 'settle', -p_consume, -p_consume, v_b - p_consume, v_r - p_consume),
          (2, 'release', 0::bigint, p_consume - v_amount, v_b - p_consume, v_r - v_amount)
        ) m (n, kind, db, dr, ba, ra)
        order by m.n;
        return v_res;
      end if;
      -- Debt or kept expired credits: spend (kept expired credits first), then let the released
      -- credits expire what is no longer needed, then repay debt.
      if p_consume > 0 then
        v_from_kept := private.credit_draw(v_org, p_consume, v_k);
      end if;
      v_free := (v_b - p_consume) - (v_r - v_amount);
      v_expired := least(v_k - v_from_kept, v_free);
      if v_expired > 0 then
        perform private.credit_shed_expired(v_org, v_expired);
      end if;
      v_repaid := least(v_d, v_free - v_expired);
      if v_repaid > 0 then
        perform private.credit_draw(v_org, v_repaid, 0);
      end if;
      update billing.credit_accounts
      set balance = balance - p_consume - v_expired - v_repaid, reserved = reserved - v_amount, debt = debt - v_repaid,
          kept_expired = kept_expired - v_from_kept - v_expired, updated_at = now()
      where org_id = v_org;
      -- The journal, in the order the movements apply: settle, release, expire, debt repaid.
      insert into billing.credit_entries (org_id, operation, kind, balance_delta, reserved_delta, debt_delta,
                                          balance_after, reserved_after, debt_after, reservation_id, idempotency_key)
      select v_org, 'resolve', m.kind, m.db, m.dr, m.dd, m.ba, m.ra, m.da, v_res.id, v_res.id::text
      from (values
        (1, 'settle', -p_consume, -p_consume, 0::bigint, v_b - p_consume, v_r - p_consume, v_d),
        (2, 'release', 0::bigint, p_consume - v_amount, 0::bigint, v_b - p_consume, v_r - v_amount, v_d),
        (3, 'expire', -v_expired, 0::bigint, 0::bigint, v_b - p_consume - v_expired, v_r - v_amount, v_d),
        (4, 'debt_repaid', -v_repaid, 0::bigint, -v_repaid, v_b - p_consume - v_expired - v_repaid, v_r - v_amount, v_d - v_repaid)
      ) m (n, kind, db, dr, dd, ba, ra, da)
      where m.db <> 0 or m.dr <> 0
      order by m.n;
      return v_res;
    end if;
    -- Resolved meanwhile: give back what the fast path took, then answer as below.
    select * into v_res from billing.credit_reservations where id = p_reservation_id;
    if v_fast then
      update billing.credit_accounts set balance = balance + p_consume, reserved = reserved + v_res.amount
      where org_id = v_org;
    end if;
  end if;
  -- A resolved reservation never changes again: a replay answers, anything else is refused.
  if v_res.status = p_status and (p_status <> 'posted' or v_res.settled_amount = p_consume) then
    return v_res; -- already applied
  end if;
  raise exception 'reservation is already %', v_res.status using errcode = '22023';
end
$$;

-- After credits were added to a locked account: expires what expired grants kept for
-- reservations and no longer need to (a new grant now covers them), journaled under the
-- operation that added them.
create function private.credit_shed_unneeded(p_org_id uuid, p_operation text, p_key text)
returns void
language plpgsql security definer
set search_path = ''
as $$
declare
  v_shed bigint;
begin
  select least(kept_expired, balance - reserved) into v_shed from billing.credit_accounts where org_id = p_org_id;
  if v_shed > 0 then
    perform private.credit_shed_expired(p_org_id, v_shed);
    update billing.credit_accounts set kept_expired = kept_expired - v_shed where org_id = p_org_id;
    perform private.credit_move(p_org_id, p_operation, 'expire', -v_shed, 0, 0, p_key);
  end if;
end
$$;
comment on function private.credit_shed_unneeded(uuid, text, text) is 'Expires the credits expired grants kept for reservations that the account no longer needs (kept_expired beyond reserved minus live credits). Caller holds the account lock.';

revoke all on function private.credit_draw(uuid, bigint, bigint),
  private.credit_shed_expired(uuid, bigint),
  private.credit_shed_unneeded(uuid, text, text),
  private.credit_resolve(uuid, text, bigint) from public, anon, authenticated;

-- ---------------------------------------------------------------------------
-- Operations
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
  v_done bigint;
  v_repay bigint;
begin
  if p_amount is null or p_amount <= 0 then
    raise exception 'a grant must be positive' using errcode = '22023';
  end if;
  if p_idempotency_key is null or p_idempotency_key = '' then
    raise exception 'a grant needs an idempotency key' using errcode = '22023';
  end if;
  if p_expires_at is not null and p_expires_at <= now() then
    raise exception 'a grant cannot expire in the past' using errcode = '22023';
  end if;
  v_acct := private.lock_credit_account(p_org_id);
  select e.grant_id, e.balance_delta into v_grant, v_done from billing.credit_entries e
  where e.org_id = p_org_id and e.operation = 'grant' and e.idempotency_key = p_idempotency_key and e.kind = 'grant';
  if found then
    if v_done <> p_amount then
      raise exception 'idempotency key % was used for a grant of % credits, not %', p_idempotency_key, v_done, p_amount
        using errcode = '22023';
    end if;
    return v_grant; -- already applied
  end if;
  if p_source_ref is not null then
    select g.id into v_grant from billing.credit_grants g
    where g.org_id = p_org_id and g.category = p_category and g.source_ref = p_source_ref;
    if found then
      return v_grant; -- this source already granted
    end if;
  end if;
  -- Debt is repaid first, out of the new grant.
  v_repay := least(v_acct.debt, p_amount);
  insert into billing.credit_grants (org_id, category, amount, remaining, priority, expires_at, source_ref)
  values (p_org_id, p_category, p_amount, p_amount - v_repay,
          coalesce(p_priority, case p_category when 'promotional' then 10 when 'subscription' then 20
                                               when 'pack' then 30 else 40 end),
          p_expires_at, p_source_ref)
  returning id into v_grant;
  perform private.credit_move(p_org_id, 'grant', 'grant', p_amount, 0, 0, p_idempotency_key, v_grant);
  if v_repay > 0 then
    perform private.credit_move(p_org_id, 'grant', 'debt_repaid', -v_repay, 0, -v_repay, p_idempotency_key, v_grant);
  end if;
  -- The new credits now cover reservations that expired credits were kept for: those expire.
  if v_acct.kept_expired > 0 then
    perform private.credit_shed_unneeded(p_org_id, 'grant', p_idempotency_key);
  end if;
  return v_grant;
end
$$;
comment on function billing.grant_credits(uuid, text, bigint, text, int, timestamptz, text) is 'Adds credits. Idempotent by key (the same key with another amount is refused, 22023) and by (category, source_ref). Outstanding debt is repaid from the grant first; expired credits kept only to cover reservations then expire, since the grant covers them.';

create or replace function billing.reserve_credits(
  p_org_id uuid, p_amount bigint, p_idempotency_key text, p_ttl interval default interval '15 minutes', p_ref text default null)
returns billing.credit_reservations
language plpgsql security definer
set search_path = ''
set plan_cache_mode = force_generic_plan
set enable_seqscan = off
as $$
declare
  v_res billing.credit_reservations;
  v_expires timestamptz := now() + p_ttl;
  v_b bigint;
  v_r bigint;
  v_d bigint;
begin
  if p_amount is null or p_amount <= 0 then
    raise exception 'a reservation must be positive' using errcode = '22023';
  end if;
  if p_idempotency_key is null or p_idempotency_key = '' then
    raise exception 'a reservation needs an idempotency key' using errcode = '22023';
  end if;
  if p_ttl is null or p_ttl <= interval '0' or p_ttl > interval '1 day' then
    raise exception 'a reservation lives between 1 second and 1 day' using errcode = '22023';
  end if;
  -- Hold on the account if enough is available: this update is also the account's lock.
  update billing.credit_accounts
  set reserved = reserved + p_amount,
      pending_expires_from = case when reserved = 0 then v_expires else least(pending_expires_from, v_expires) end,
      updated_at = now()
  where org_id = p_org_id and balance - reserved >= p_amount
  returning balance, reserved, debt into v_b, v_r, v_d;
  if not found then
    -- Not enough (or no account yet): a replay still answers; otherwise nothing changed.
    select balance - reserved into v_b from private.lock_credit_account(p_org_id);
    select * into v_res from billing.credit_reservations r where r.org_id = p_org_id and r.idempotency_key = p_idempotency_key;
    if found then
      if v_res.amount <> p_amount then
        raise exception 'idempotency key % was used for a different amount', p_idempotency_key using errcode = '22023';
      end if;
      return v_res; -- already applied
    end if;
    raise exception 'insufficient credits: % available, % needed', v_b, p_amount using errcode = 'PT402';
  end if;
  insert into billing.credit_reservations (org_id, amount, idempotency_key, ref, expires_at)
  values (p_org_id, p_amount, p_idempotency_key, p_ref, v_expires)
  on conflict (org_id, idempotency_key) do nothing
  returning * into v_res;
  if not found then
    -- A replay: answer with the original, giving back what this call held.
    select * into v_res from billing.credit_reservations r where r.org_id = p_org_id and r.idempotency_key = p_idempotency_key;
    if v_res.amount <> p_amount then
      raise exception 'idempotency key % was used for a different amount', p_idempotency_key using errcode = '22023';
    end if;
    update billing.credit_accounts set reserved = reserved - p_amount where org_id = p_org_id;
    return v_res; -- already applied
  end if;
  insert into billing.credit_entries (org_id, operation, kind, balance_delta, reserved_delta, debt_delta,
                                      balance_after, reserved_after, debt_after, reservation_id, idempotency_key)
  values (p_org_id, 'reserve', 'reserve', 0, p_amount, 0, v_b, v_r, v_d, v_res.id, p_idempotency_key);
  return v_res;
end
$$;
comment on function billing.reserve_credits(uuid, bigint, text, interval, text) is 'Holds credits on the org''s account for work about to run (no grant is touched until it settles). Idempotent by key (the same key with another amount is refused, 22023). Fails with PT402 (HTTP 402) when too few are available, changing nothing.';

comment on function billing.settle_credits(uuid, bigint) is 'Spends up to the reserved amount from the grants in draw order and releases the rest. Settling again with the same amount is a no-op.';

-- For work whose price is known before it runs: spends at once, with no reservation. Draws from
-- the grants in the order settle does, and journals one settle entry (operation charge).
create or replace function billing.charge_credits(
  p_org_id uuid, p_amount bigint, p_idempotency_key text, p_ref text default null)
returns billing.credit_entries
language plpgsql security definer
set search_path = ''
set plan_cache_mode = force_generic_plan
set enable_seqscan = off
as $$
declare
  v_b bigint;
  v_r bigint;
  v_d bigint;
  v_entry billing.credit_entries;
begin
  if p_amount is null or p_amount <= 0 then
    raise exception 'a charge must be positive' using errcode = '22023';
  end if;
  if p_idempotency_key is null or p_idempotency_key = '' then
    raise exception 'a charge needs an idempotency key' using errcode = '22023';
  end if;
  -- Spend on the account if enough is available: this update is also the account's lock.
  -- (Available credits are never kept expired ones: those exist only while balance = reserved.)
  update billing.credit_accounts
  set balance = balance - p_amount, updated_at = now()
  where org_id = p_org_id and balance - reserved >= p_amount
  returning balance, reserved, debt into v_b, v_r, v_d;
  if not found then
    -- Not enough (or no account yet): a replay still answers; otherwise nothing changed.
    select balance - reserved into v_b from private.lock_credit_account(p_org_id);
    select * into v_entry from billing.credit_entries e
    where e.org_id = p_org_id and e.operation = 'charge' and e.idempotency_key = p_idempotency_key and e.kind = 'settle';
    if not found then
      raise exception 'insufficient credits: % available, % needed', v_b, p_amount using errcode = 'PT402';
    end if;
  else
    insert into billing.credit_entries (org_id, operation, kind, balance_delta, reserved_delta, debt_delta,
                                        balance_after, reserved_after, debt_after, idempotency_key, ref)
    values (p_org_id, 'charge', 'settle', -p_amount, 0, 0, v_b, v_r, v_d, p_idempotency_key, p_ref)
    on conflict (org_id, operation, idempotency_key, kind) where operation in ('grant', 'charge', 'claw_back') do nothing
    returning * into v_entry;
    if found then
      -- Spend from the first grant in draw order when it covers it all (the common case); else draw.
      update billing.credit_grants c set remaining = c.remaining - p_amount
      from (select id from billing.credit_grants
            where org_id = p_org_id and expired_at is null and remaining > 0
            order by priority, expires_at nulls last, created_at, id limit 1) f
      where c.id = f.id and c.remaining >= p_amount;
      if not found then
        perform private.credit_draw(p_org_id, p_amount, 0);
      end if;
      return v_entry;
    end if;
    -- A replay: give back what this call took, and answer with the original below.
    update billing.credit_accounts set balance = balance + p_amount where org_id = p_org_id;
    select * into v_entry from billing.credit_entries e
    where e.org_id = p_org_id and e.operation = 'charge' and e.idempotency_key = p_idempotency_key and e.kind = 'settle';
  end if;
  if -v_entry.balance_delta <> p_amount then
    raise exception 'idempotency key % was used for a charge of % credits, not %', p_idempotency_key, -v_entry.balance_delta, p_amount
      using errcode = '22023';
  end if;
  return v_entry; -- already applied
end
$$;

-- Expires stale reservations and past-due grants; the worker runs it every minute. A grant
-- loses what the account does not need to cover its pending reservations (at most
-- balance - reserved); the rest is kept on it (kept_expired) and spent first by the next
-- settles, or expires when no longer needed. Each item runs in its own subtransaction: one that
-- fails is rolled back alone, counted in failures and reported as a warning, and is tried
-- again on the next run.
create or replace function billing.expire_credits(p_now timestamptz default now(), p_org_id uuid default null)
returns table (reservations int, grants int, failures int)
language plpgsql security definer
set search_path = ''
as $$
declare
  a record;
  r record;
  v_acct billing.credit_accounts;
  v_res int := 0;
  v_grants int := 0;
  v_failed int := 0;
  v_rem bigint;
  v_exp bigint;
begin
  -- Accounts in org order (the order accounts are locked everywhere).
  for a in select org_id, pending_expires_from from billing.credit_accounts
           where reserved > 0 and pending_expires_from <= p_now and (p_org_id is null or org_id = p_org_id)
           order by org_id loop
    for r in select id from billing.credit_reservations
             where org_id = a.org_id and expires_at >= a.pending_expires_from and expires_at <= p_now and status = 'pending'
             order by expires_at, id loop
      begin
        perform private.credit_resolve(r.id, 'expired', 0);
        v_res := v_res + 1;
      exception
        when invalid_parameter_value then
          null; -- resolved by someone else meanwhile
        when others then
          v_failed := v_failed + 1;
          raise warning 'credits: reservation % did not expire: % (%)', r.id, sqlerrm, sqlstate;
      end;
    end loop;
    -- Raise the bound past what this run resolved, under the lock: to the earliest expiry still
    -- pending up to p_now (a failure, or one reserved meanwhile), else to p_now.
    perform private.lock_credit_account(a.org_id);
    update billing.credit_accounts c
    set pending_expires_from = case when c.reserved = 0 then null else coalesce(
          (select min(x.expires_at) from billing.credit_reservations x
           where x.org_id = c.org_id and x.status = 'pending'
             and x.expires_at >= c.pending_expires_from and x.expires_at <= p_now),
          greatest(c.pending_expires_from, p_now)) end
    where c.org_id = a.org_id;
  end loop;
  for r in select id, org_id from billing.credit_grants
           where expired_at is null and expires_at <= p_now and (p_org_id is null or org_id = p_org_id) order by org_id, id loop
    begin
      v_acct := private.lock_credit_account(r.org_id);
      select remaining into v_rem from billing.credit_grants where id = r.id and expired_at is null;
      continue when not found;
      -- Never below what is reserved: keep what the reservations need.
      v_exp := least(v_rem, v_acct.balance - v_acct.reserved);
      update billing.credit_grants set expired_at = p_now, remaining = remaining - v_exp where id = r.id;
      if v_rem > v_exp then
        update billing.credit_accounts set kept_expired = kept_expired + (v_rem - v_exp) where org_id = r.org_id;
      end if;
      if v_exp > 0 then
        perform private.credit_move(r.org_id, 'expire', 'expire', -v_exp, 0, 0, r.id::text, r.id);
      end if;
      v_grants := v_grants + 1;
    exception when others then
      v_failed := v_failed + 1;
      raise warning 'credits: grant % did not expire: % (%)', r.id, sqlerrm, sqlstate;
    end;
  end loop;
  return query select v_res, v_grants, v_failed;
end
$$;
comment on function billing.expire_credits(timestamptz, uuid) is 'Expires pending reservations past their expires_at and grants past theirs, for one org or (null) all. A grant never expires below what is reserved: the credits pending reservations need stay (kept_expired) until they resolve. Each item on its own: one that fails is counted in failures (and logged as a warning) without stopping the rest. Safe to run any number of times.';

-- Refunds and disputes: take back what is available (never what pending reservations hold),
-- from the named grant first, then in draw order; record the rest as debt, repaid from credits
-- released later and from future grants.
create or replace function billing.claw_back_credits(
  p_org_id uuid, p_amount bigint, p_idempotency_key text, p_grant_id uuid default null)
returns table (clawed_back bigint, debt bigint)
language plpgsql security definer
set search_path = ''
as $$
declare
  g record;
  v_acct billing.credit_accounts;
  v_left bigint;
  v_take bigint;
  v_taken bigint := 0;
  v_prev_taken bigint;
  v_prev_debt bigint;
begin
  if p_amount is null or p_amount <= 0 then
    raise exception 'a claw-back must be positive' using errcode = '22023';
  end if;
  if p_idempotency_key is null or p_idempotency_key = '' then
    raise exception 'a claw-back needs an idempotency key' using errcode = '22023';
  end if;
  v_acct := private.lock_credit_account(p_org_id);
  select coalesce(sum(-e.balance_delta) filter (where e.kind = 'clawback'), 0)::bigint,
         coalesce(sum(e.debt_delta) filter (where e.kind = 'debt'), 0)::bigint
  into v_prev_taken, v_prev_debt
  from billing.credit_entries e
  where e.org_id = p_org_id and e.operation = 'claw_back' and e.idempotency_key = p_idempotency_key;
  if v_prev_taken + v_prev_debt > 0 then
    if v_prev_taken + v_prev_debt <> p_amount then
      raise exception 'idempotency key % was used for a claw-back of % credits, not %', p_idempotency_key,
        v_prev_taken + v_prev_debt, p_amount using errcode = '22023';
    end if;
    return query select v_prev_taken, v_prev_debt; -- already applied
    return;
  end if;
  -- What pending reservations hold stays: a reservation can always settle up to its amount.
  v_left := least(p_amount, v_acct.balance - v_acct.reserved);
  for g in
    select id, remaining from billing.credit_grants
    where org_id = p_org_id and expired_at is null and remaining > 0
    order by (id = p_grant_id) desc, priority, expires_at nulls last, created_at, id
  loop
    exit when v_left = 0;
    v_take := least(g.remaining, v_left);
    update billing.credit_grants set remaining = remaining - v_take where id = g.id;
    v_left := v_left - v_take;
    v_taken := v_taken + v_take;
  end loop;
  if v_left > 0 then
    raise exception 'credits ledger out of balance for org %', p_org_id using errcode = 'XX000';
  end if;
  if v_taken > 0 then
    perform private.credit_move(p_org_id, 'claw_back', 'clawback', -v_taken, 0, 0, p_idempotency_key, p_grant_id);
  end if;
  if p_amount > v_taken then
    perform private.credit_move(p_org_id, 'claw_back', 'debt', 0, 0, p_amount - v_taken, p_idempotency_key, p_grant_id);
  end if;
  return query select v_taken, p_amount - v_taken;
end
$$;
comment on function billing.claw_back_credits(uuid, bigint, text, uuid) is 'For refunds and disputes: removes up to p_amount available credits (the named grant first, then draw order; never what pending reservations hold) and records the rest as debt, repaid first from credits released later and from future grants. Idempotent by key (the same key with another amount is refused, 22023).';

-- ---------------------------------------------------------------------------
-- Which grants cover each pending reservation: a view, allocated in draw order
-- ---------------------------------------------------------------------------

create view billing.credit_allocations with (security_invoker = true) as
with pending as (
  select r.id, r.org_id, r.amount,
         sum(r.amount) over (partition by r.org_id order by r.created_at, r.id) - r.amount as lo
  from billing.credit_reservations r
  where r.status = 'pending'
), covering as (
  select g.id, g.org_id, g.remaining,
         sum(g.remaining) over w - g.remaining as lo
  from billing.credit_grants g
  where g.remaining > 0
  window w as (partition by g.org_id
               order by g.expired_at is null, g.expired_at, g.priority, g.expires_at nulls last, g.created_at, g.id)
)
select p.id as reservation_id, c.id as grant_id, p.org_id,
       least(p.lo + p.amount, c.lo + c.remaining) - greatest(p.lo, c.lo) as amount,
       (row_number() over (partition by p.id order by c.lo))::int as draw_order
from pending p
join covering c on c.org_id = p.org_id and c.lo < p.lo + p.amount and p.lo < c.lo + c.remaining;
comment on view billing.credit_allocations is 'Which grants would cover each pending reservation, and how many credits from each, in draw order (expired grants kept for reservations first, then priority, earliest expiry, age), if the org''s pending reservations settled in the order they were made. Reservations hold credits on the account, not on grants: this is a reading of the grants, not a lock on them, and resolved reservations do not appear. Read with the reader''s rights (billing managers see their org''s); filter by org_id.';
revoke all on billing.credit_allocations from anon, authenticated;
grant select on billing.credit_allocations to authenticated, service_role;

-- ---------------------------------------------------------------------------
-- Existing data: expired credits no reservation needs any more expire now.
-- ---------------------------------------------------------------------------

do $$
declare
  a record;
begin
  for a in select org_id from billing.credit_accounts where kept_expired > 0 and balance > reserved order by org_id loop
    perform private.lock_credit_account(a.org_id);
    perform private.credit_shed_unneeded(a.org_id, 'expire', 'account-holds');
  end loop;
end
$$;
