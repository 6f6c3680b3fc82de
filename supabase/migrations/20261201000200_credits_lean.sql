-- Credits, lean: fast enough for every AI call, and idempotency keys per operation.
--
--   * billing.charge_credits(): one step for work whose price is known up front. No reservation
--     row: the account, the grants drawn from and one journal entry, in one transaction.
--   * Fewer row writes per reserve and settle:
--       - a reservation's holds (grant, amount) live on the reservation row (holds), not in a
--         table of their own; billing.credit_allocations stays as a view of them;
--       - reserve takes the account's lock with the update that applies it (no separate lock);
--       - grants and reservations are never locked row by row: every operation on an org locks
--         its account first, so the account's lock already serializes them;
--       - no index on a column a hot update changes, so updates of accounts, grants and
--         reservations are HOT: the pending-reservations index (on status) is replaced by one on
--         (org_id, expires_at), and the account keeps a lower bound of its pending
--         reservations' expiry (pending_expires_from) for the expiry job;
--       - the journal's uniqueness index covers only the operations whose idempotency it
--         decides (grant, claw-back, charge); reserve, settle, void and expiry are made
--         idempotent by the rows they resolve (the reservation's key and status, the grant's
--         expired_at), under the account's lock;
--       - fillfactor leaves room on each page for those HOT updates.
--   * Keys are namespaced by operation (finding 4): the journal has an operation column, and
--     its key is the caller's key as given, so a reservation keyed 'job-42:grant' and a grant
--     keyed 'reserve:job-42' no longer meet. A reused key with a different amount is an error
--     (22023) for grant_credits and claw_back_credits, as for reserve_credits.
--   * The hot functions' cached generic plans never seq-scan a table that was empty when the
--     plan was made (enable_seqscan = off on them; see Plans below).
--   * expire_credits isolates each item: one failure is counted and reported as a warning, and
--     the rest of the run goes on.
--
-- Row writes per reserve+settle of one credit from one grant, measured with
-- pg_stat_xact_user_tables (and the index entries they add):
--   before: reserve 5 rows (account, grant, reservation, allocation, entry) + 2 row locks
--           written separately (account, grant); settle 4 rows (account, grant, reservation
--           non-HOT, entry) + 3 row locks (account, reservation, grant); 14 index entries.
--   after:  reserve 4 rows (account, grant, reservation, entry); settle 4 rows (account, grant,
--           reservation, entry); no separate row locks; every update HOT; 5 index entries.
--   charge: 3 rows (account, grant, entry), 2 index entries.

-- ---------------------------------------------------------------------------
-- Schema
-- ---------------------------------------------------------------------------

-- Checks that cost nothing on the hot path. Postgres re-reads and re-plans every CHECK
-- constraint of a table for each statement that writes it, whichever columns change, and the
-- ledger writes accounts, grants, reservations and entries on every operation. So:
--   * closed sets and positive amounts are domains: checked when a value is written to the
--     column, from a definition parsed once per connection;
--   * each table keeps one CHECK for its cross-column invariant;
--   * a grant's expiry, which never changes after it is made, is checked by a trigger that
--     fires only when effective_at or expires_at is written.
create domain billing.credit_amount as bigint check (value > 0);
comment on domain billing.credit_amount is 'A positive number of credits.';
create domain billing.credit_category as text check (value in ('subscription', 'pack', 'promotional', 'manual'));
comment on domain billing.credit_category is 'Where a grant came from: subscription, pack, promotional or manual.';
create domain billing.credit_reservation_status as text check (value in ('pending', 'posted', 'voided', 'expired'));
comment on domain billing.credit_reservation_status is 'A reservation is pending until it resolves once: posted (settled), voided or expired.';
create domain billing.credit_entry_kind as text
  check (value in ('grant', 'reserve', 'settle', 'release', 'expire', 'clawback', 'debt', 'debt_repaid'));
comment on domain billing.credit_entry_kind is 'The movement a journal entry records.';
create domain billing.credit_operation as text check (value in ('grant', 'reserve', 'resolve', 'charge', 'expire', 'claw_back'));
comment on domain billing.credit_operation is 'The ledger operation that wrote a journal entry; idempotency keys are per operation.';

alter table billing.credit_accounts
  drop constraint credit_accounts_balance_check, drop constraint credit_accounts_reserved_check,
  drop constraint credit_accounts_debt_check, drop constraint available_not_negative,
  add constraint credit_accounts_in_range check (reserved >= 0 and debt >= 0 and balance >= reserved);
comment on constraint credit_accounts_in_range on billing.credit_accounts is 'Nothing is negative, and available (balance - reserved) never is either.';

alter table billing.credit_grants
  drop constraint credit_grants_category_check, drop constraint credit_grants_amount_check,
  drop constraint remaining_in_range, drop constraint held_in_range, drop constraint expiry_after_start,
  alter column category type billing.credit_category, alter column amount type billing.credit_amount,
  add constraint credit_grants_in_range check (held >= 0 and held <= remaining and remaining <= amount);
comment on constraint credit_grants_in_range on billing.credit_grants is '0 <= held <= remaining <= amount.';

create or replace function private.credit_grant_expiry_after_start() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if new.expires_at <= new.effective_at then
    raise exception 'a grant must expire after it takes effect' using errcode = '23514';
  end if;
  return new;
end
$$;
revoke all on function private.credit_grant_expiry_after_start() from public;
comment on function private.credit_grant_expiry_after_start() is 'Trigger: a grant expires after it takes effect (checked only when those columns are written).';
create trigger credit_grants_expiry_after_start before insert or update of effective_at, expires_at on billing.credit_grants
  for each row execute function private.credit_grant_expiry_after_start();

alter table billing.credit_reservations
  drop constraint credit_reservations_status_check, drop constraint credit_reservations_amount_check,
  drop constraint credit_reservations_check, drop constraint resolved_when_not_pending,
  drop constraint settled_only_when_posted,
  alter column status type billing.credit_reservation_status, alter column amount type billing.credit_amount,
  add constraint credit_reservations_resolution check (
    (status = 'pending') = (resolved_at is null)
    and (status = 'posted') = (settled_amount is not null)
    and (settled_amount is null or settled_amount between 0 and amount));
comment on constraint credit_reservations_resolution on billing.credit_reservations is 'Resolved exactly when not pending; settled_amount (0..amount) exactly when posted.';

alter table billing.credit_entries
  drop constraint credit_entries_kind_check,
  alter column kind type billing.credit_entry_kind;

create type billing.credit_hold as (grant_id uuid, amount bigint);
comment on type billing.credit_hold is 'Credits a reservation holds from one grant.';

-- Holds on the reservation row, in draw order.
alter table billing.credit_reservations add column holds billing.credit_hold[] not null default '{}';
comment on column billing.credit_reservations.holds is 'Which grants the reservation holds credits from, and how many, in draw order (kept after it resolves, as its history).';
update billing.credit_reservations r
set holds = (select array_agg(row (al.grant_id, al.amount)::billing.credit_hold order by al.draw_order)
             from billing.credit_allocations al where al.reservation_id = r.id)
where exists (select 1 from billing.credit_allocations al where al.reservation_id = r.id);
drop table billing.credit_allocations;

create view billing.credit_allocations with (security_invoker = true) as
  select r.id as reservation_id, h.grant_id, r.org_id, h.amount, h.draw_order::int as draw_order
  from billing.credit_reservations r
  cross join lateral unnest(r.holds) with ordinality as h (grant_id, amount, draw_order);
comment on view billing.credit_allocations is 'Which grants each reservation holds credits from, in draw order: a view of credit_reservations.holds, read with the reader''s rights (billing managers see their org''s).';
revoke all on billing.credit_allocations from anon, authenticated;
grant select on billing.credit_allocations to authenticated, service_role;

-- Finding pending reservations without an index on status.
alter table billing.credit_accounts add column pending_expires_from timestamptz;
comment on column billing.credit_accounts.pending_expires_from is 'No pending reservation of the org expires before this (a lower bound, lowered by each reservation, raised by the expiry job); null when nothing is reserved. The expiry job reads it instead of an index on reservation status, which would make every settle a non-HOT update.';
update billing.credit_accounts a
set pending_expires_from = (select min(r.expires_at) from billing.credit_reservations r
                            where r.org_id = a.org_id and r.status = 'pending')
where a.reserved > 0;

drop index billing.credit_reservations_pending_idx;
create index credit_reservations_expiry_idx on billing.credit_reservations (org_id, expires_at);

-- Room on each page for HOT updates of the rows every operation changes.
alter table billing.credit_accounts set (fillfactor = 50);
alter table billing.credit_grants set (fillfactor = 70);
alter table billing.credit_reservations set (fillfactor = 80);

-- The trigger only fills updated_at for writers that leave it alone; the ledger's own
-- statements set it themselves (no trigger call on the hot path).
drop trigger credit_accounts_updated_at on billing.credit_accounts;
create trigger credit_accounts_updated_at before update on billing.credit_accounts
  for each row when (old.updated_at is not distinct from new.updated_at)
  execute function private.set_updated_at();

-- Journal keys namespaced by operation. The rows already written get their operation and the
-- caller's key back from the old suffixed/prefixed form (the one migration that rewrites them).
alter table billing.credit_entries add column operation text;
alter table billing.credit_entries disable trigger credit_entries_append_only;
update billing.credit_entries e set
  operation = case
    when e.kind = 'reserve' then 'reserve'
    when e.reservation_id is not null then 'resolve'
    when e.kind = 'expire' then 'expire'
    when e.kind in ('clawback', 'debt') then 'claw_back'
    else 'grant' end,
  idempotency_key = case
    when e.kind = 'reserve' then regexp_replace(e.idempotency_key, '^reserve:', '')
    when e.reservation_id is not null then e.reservation_id::text
    when e.kind = 'expire' then regexp_replace(e.idempotency_key, '^expire:', '')
    else regexp_replace(e.idempotency_key, ':(grant|debt_repaid|clawback|debt)$', '') end;
alter table billing.credit_entries enable trigger credit_entries_append_only;
alter table billing.credit_entries alter column operation type billing.credit_operation,
  alter column operation set not null;
alter table billing.credit_entries drop constraint credit_entries_org_id_idempotency_key_key;
-- One index for both the key and the org's history (newest first is a backward scan).
alter table billing.credit_entries drop constraint credit_entries_pkey;
alter table billing.credit_entries add primary key (org_id, id);
drop index billing.credit_entries_org_idx;
create unique index credit_entries_operation_key_idx on billing.credit_entries (org_id, operation, idempotency_key, kind)
  where operation in ('grant', 'charge', 'claw_back');
comment on column billing.credit_entries.operation is 'The operation that wrote the entry: grant, reserve, resolve (settle, void or expiry of a reservation), charge, expire (of a grant) or claw_back. Idempotency keys are per operation.';
comment on column billing.credit_entries.idempotency_key is 'The operation''s key as its caller gave it (for resolve the reservation id, for expire the grant id). Unique per org, operation and kind for grant, charge and claw_back, whose replays it answers; the others are answered by the row they resolve.';
alter table billing.credit_entries add column ref text;
comment on column billing.credit_entries.ref is 'What a charge paid for (e.g. an AI job id); free text for the caller. Reservations keep theirs on credit_reservations.ref.';
comment on table billing.credit_entries is 'Append-only journal of every credits movement with the balances after it. The sums of the deltas equal the account''s balance, reserved and debt. A charge is one settle entry (operation charge) with no reservation.';

-- ---------------------------------------------------------------------------
-- Internals
-- ---------------------------------------------------------------------------

-- Plans. The hot functions (credit_draw, credit_resolve, reserve_credits, charge_credits) keep
-- one generic plan per statement for the session (plan_cache_mode = force_generic_plan), made at
-- the session's first call. A plan made while a table was still empty or small chose a seq scan
-- (credit_reservations after a deploy, or a fresh vacuumed database: every lookup of a
-- reservation by id, the claim and the settle's join) and kept it while the table grew, so each
-- settle read the whole table (credits bench, reserve+settle against bare: 0.27 -> 0.34 on 1,000
-- orgs, 0.43 -> 0.51 on one hot org). The ledger reads rows only by key, so these functions also
-- set enable_seqscan = off: the plan uses the key's index whatever the statistics said when it
-- was made.

drop function private.credit_release(billing.credit_reservations, bigint, text);
drop function private.lock_reservation(uuid);
drop function private.credit_move(uuid, text, bigint, bigint, bigint, text, uuid, uuid);

-- Locks (creating if needed) the org's account: every ledger operation on one org runs in turn.
-- No key update: the account's key never changes, and foreign-key checks need not wait.
create or replace function private.lock_credit_account(p_org_id uuid) returns billing.credit_accounts
language plpgsql security definer
set search_path = ''
as $$
declare
  v billing.credit_accounts;
begin
  select * into v from billing.credit_accounts where org_id = p_org_id for no key update;
  if not found then
    insert into billing.credit_accounts (org_id) values (p_org_id) on conflict (org_id) do nothing;
    select * into v from billing.credit_accounts where org_id = p_org_id for no key update;
  end if;
  return v;
end
$$;

-- Applies one movement to the (locked) account and journals it.
create or replace function private.credit_move(
  p_org_id uuid, p_operation text, p_kind text, p_balance_delta bigint, p_reserved_delta bigint, p_debt_delta bigint,
  p_key text, p_grant_id uuid default null, p_reservation_id uuid default null)
returns void
language plpgsql security definer
set search_path = ''
as $$
declare
  v billing.credit_accounts;
begin
  update billing.credit_accounts
  set balance = balance + p_balance_delta, reserved = reserved + p_reserved_delta, debt = debt + p_debt_delta,
      updated_at = now()
  where org_id = p_org_id
  returning * into v;
  insert into billing.credit_entries (org_id, operation, kind, balance_delta, reserved_delta, debt_delta,
                                      balance_after, reserved_after, debt_after, grant_id, reservation_id, idempotency_key)
  values (p_org_id, p_operation, p_kind, p_balance_delta, p_reserved_delta, p_debt_delta,
          v.balance, v.reserved, v.debt, p_grant_id, p_reservation_id, p_key);
end
$$;

-- Draws p_amount free credits from the org's grants in draw order (priority, then earliest
-- expiry, then age), holding them (p_hold) or spending them. The caller holds the account's
-- lock and has checked that enough is available. Returns what came from which grant. (Reserve
-- and charge first try the common case inline, in one statement: the first grant in draw order
-- covers it all.)
create or replace function private.credit_draw(p_org_id uuid, p_amount bigint, p_hold boolean)
returns billing.credit_hold[]
language plpgsql security definer
set search_path = ''
set plan_cache_mode = force_generic_plan
set enable_seqscan = off
as $$
declare
  v_holds billing.credit_hold[] := '{}';
  g record;
  v_left bigint := p_amount;
  v_take bigint;
begin
  for g in
    select id, remaining - held as free from billing.credit_grants
    where org_id = p_org_id and expired_at is null and remaining > held
    order by priority, expires_at nulls last, created_at, id
  loop
    v_take := least(g.free, v_left);
    v_left := v_left - v_take;
    if p_hold then
      update billing.credit_grants set held = held + v_take where id = g.id;
    else
      update billing.credit_grants set remaining = remaining - v_take where id = g.id;
    end if;
    v_holds := v_holds || row (g.id, v_take)::billing.credit_hold;
    exit when v_left = 0;
  end loop;
  if v_left > 0 then
    -- The account says enough is available but the grants disagree: never hand out credits that do not exist.
    raise exception 'credits ledger out of balance for org %', p_org_id using errcode = 'XX000';
  end if;
  return v_holds;
end
$$;

-- Resolves a reservation: consumes p_consume of its holds in draw order and releases the rest.
-- Released credits of a grant that has already expired expire now; released credits of a live
-- grant repay debt first (a claw-back that met held credits recorded them as debt).
-- The account is locked first, as everywhere (without debt, by the update that applies the
-- resolution); the reservation is then claimed under that lock.
create or replace function private.credit_resolve(p_reservation_id uuid, p_status text, p_consume bigint)
returns billing.credit_reservations
language plpgsql security definer
set search_path = ''
set plan_cache_mode = force_generic_plan
set enable_seqscan = off
as $$
declare
  v_res billing.credit_reservations;
  v_acct billing.credit_accounts;
  v_amount bigint;
  v_fast boolean;
  h billing.credit_hold;
  v_left bigint := p_consume;
  v_take bigint;
  v_repay bigint;
  v_repaid bigint := 0;
  v_expired bigint := 0;
  v_expired_at timestamptz;
  v_b bigint;
  v_r bigint;
  v_d bigint;
begin
  -- The common case in one statement: a pending reservation of an org without debt. The
  -- account's update is also its lock; the reservation is claimed under it just below (the
  -- guard on reserved keeps a reservation resolved meanwhile from driving it negative).
  if p_consume >= 0 then
    update billing.credit_accounts a
    set balance = a.balance - p_consume, reserved = a.reserved - r.amount, updated_at = now()
    from billing.credit_reservations r
    where r.id = p_reservation_id and r.status = 'pending' and p_consume <= r.amount
      and a.org_id = r.org_id and a.debt = 0 and a.reserved >= r.amount
    returning a.* into v_acct;
    v_fast := found;
  else
    v_fast := false;
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
      -- With debt, lock the account first: the release may repay some.
      select * into v_acct from billing.credit_accounts where org_id = v_res.org_id for no key update;
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
      foreach h in array v_res.holds loop
        v_take := least(h.amount, v_left);
        v_left := v_left - v_take;
        update billing.credit_grants
        set held = held - h.amount,
            remaining = remaining - v_take
                        - case when expired_at is null then least(h.amount - v_take, v_acct.debt - v_repaid)
                               else h.amount - v_take end
        where id = h.grant_id
        returning expired_at into v_expired_at;
        if v_expired_at is null then
          v_repay := least(h.amount - v_take, v_acct.debt - v_repaid);
          v_repaid := v_repaid + v_repay;
        else
          v_expired := v_expired + (h.amount - v_take);
        end if;
      end loop;
      if v_fast then
        v_b := v_acct.balance + p_consume;
        v_r := v_acct.reserved + v_amount;
        v_d := 0;
        if v_expired > 0 then
          update billing.credit_accounts set balance = balance - v_expired where org_id = v_res.org_id;
        end if;
      else
        v_b := v_acct.balance;
        v_r := v_acct.reserved;
        v_d := v_acct.debt;
        update billing.credit_accounts
        set balance = balance - p_consume - v_expired - v_repaid, reserved = reserved - v_amount, debt = debt - v_repaid,
            updated_at = now()
        where org_id = v_res.org_id;
      end if;
      -- The journal, in the order the movements apply: settle, release, expire, debt repaid.
      if v_expired = 0 and v_repaid = 0 and (p_consume = 0 or p_consume = v_amount) then
        -- All spent or all released: one entry.
        insert into billing.credit_entries (org_id, operation, kind, balance_delta, reserved_delta, debt_delta,
                                            balance_after, reserved_after, debt_after, reservation_id, idempotency_key)
        values (v_res.org_id, 'resolve', case when p_consume = 0 then 'release' else 'settle' end, -p_consume, -v_amount, 0,
                v_b - p_consume, v_r - v_amount, v_d, v_res.id, v_res.id::text);
        return v_res;
      end if;
      insert into billing.credit_entries (org_id, operation, kind, balance_delta, reserved_delta, debt_delta,
                                          balance_after, reserved_after, debt_after, reservation_id, idempotency_key)
      select v_res.org_id, 'resolve', m.kind, m.db, m.dr, m.dd, m.ba, m.ra, m.da, v_res.id, v_res.id::text
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
      where org_id = v_acct.org_id;
    end if;
  end if;
  -- A resolved reservation never changes again: a replay answers, anything else is refused.
  if v_res.status = p_status and (p_status <> 'posted' or v_res.settled_amount = p_consume) then
    return v_res; -- already applied
  end if;
  raise exception 'reservation is already %', v_res.status using errcode = '22023';
end
$$;

-- Resolves a pending reservation without spending (void, or expiry by the job).
create or replace function private.resolve_without_spending(p_reservation_id uuid, p_status text)
returns billing.credit_reservations
language plpgsql security definer
set search_path = ''
as $$
begin
  return private.credit_resolve(p_reservation_id, p_status, 0);
end
$$;

revoke all on function private.lock_credit_account(uuid),
  private.credit_move(uuid, text, text, bigint, bigint, bigint, text, uuid, uuid),
  private.credit_resolve(uuid, text, bigint),
  private.credit_draw(uuid, bigint, boolean),
  private.resolve_without_spending(uuid, text) from public, anon, authenticated;

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
  return v_grant;
end
$$;
comment on function billing.grant_credits(uuid, text, bigint, text, int, timestamptz, text) is 'Adds credits. Idempotent by key (the same key with another amount is refused, 22023) and by (category, source_ref). Outstanding debt is repaid from the grant first.';

create or replace function billing.reserve_credits(
  p_org_id uuid, p_amount bigint, p_idempotency_key text, p_ttl interval default interval '15 minutes', p_ref text default null)
returns billing.credit_reservations
language plpgsql security definer
set search_path = ''
set plan_cache_mode = force_generic_plan
set enable_seqscan = off
as $$
declare
  v_acct billing.credit_accounts;
  v_res billing.credit_reservations;
  v_expires timestamptz := now() + p_ttl;
  v_holds billing.credit_hold[];
  h billing.credit_hold;
  v_grant uuid;
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
  returning * into v_acct;
  if not found then
    -- Not enough (or no account yet): a replay still answers; otherwise nothing changed.
    v_acct := private.lock_credit_account(p_org_id);
    select * into v_res from billing.credit_reservations r where r.org_id = p_org_id and r.idempotency_key = p_idempotency_key;
    if found then
      if v_res.amount <> p_amount then
        raise exception 'idempotency key % was used for a different amount', p_idempotency_key using errcode = '22023';
      end if;
      return v_res; -- already applied
    end if;
    raise exception 'insufficient credits: % available, % needed', v_acct.balance - v_acct.reserved, p_amount
      using errcode = 'PT402';
  end if;
  -- Hold from the first grant in draw order when it covers it all (the common case); else draw.
  update billing.credit_grants c set held = c.held + p_amount
  from (select id from billing.credit_grants
        where org_id = p_org_id and expired_at is null and remaining > held
        order by priority, expires_at nulls last, created_at, id limit 1) f
  where c.id = f.id and c.remaining - c.held >= p_amount
  returning c.id into v_grant;
  if found then
    v_holds := array[row (v_grant, p_amount)::billing.credit_hold];
  else
    v_holds := private.credit_draw(p_org_id, p_amount, true);
  end if;
  insert into billing.credit_reservations (org_id, amount, idempotency_key, ref, expires_at, holds)
  values (p_org_id, p_amount, p_idempotency_key, p_ref, v_expires, v_holds)
  on conflict (org_id, idempotency_key) do nothing
  returning * into v_res;
  if not found then
    -- A replay: answer with the original, giving back what this call held.
    select * into v_res from billing.credit_reservations r where r.org_id = p_org_id and r.idempotency_key = p_idempotency_key;
    if v_res.amount <> p_amount then
      raise exception 'idempotency key % was used for a different amount', p_idempotency_key using errcode = '22023';
    end if;
    foreach h in array v_holds loop
      update billing.credit_grants set held = held - h.amount where id = h.grant_id;
    end loop;
    update billing.credit_accounts set reserved = reserved - p_amount where org_id = p_org_id;
    return v_res; -- already applied
  end if;
  insert into billing.credit_entries (org_id, operation, kind, balance_delta, reserved_delta, debt_delta,
                                      balance_after, reserved_after, debt_after, reservation_id, idempotency_key)
  values (p_org_id, 'reserve', 'reserve', 0, p_amount, 0, v_acct.balance, v_acct.reserved, v_acct.debt, v_res.id, p_idempotency_key);
  return v_res;
end
$$;
comment on function billing.reserve_credits(uuid, bigint, text, interval, text) is 'Holds credits for work about to run. Idempotent by key (the same key with another amount is refused, 22023). Fails with PT402 (HTTP 402) when too few are available.';

create or replace function billing.settle_credits(p_reservation_id uuid, p_amount bigint)
returns billing.credit_reservations
language plpgsql security definer
set search_path = ''
as $$
begin
  return private.credit_resolve(p_reservation_id, 'posted', p_amount);
end
$$;
comment on function billing.settle_credits(uuid, bigint) is 'Spends up to the reserved amount and releases the rest. Settling again with the same amount is a no-op.';


-- For work whose price is known before it runs: spends at once, with no reservation. Draws from
-- the grants in the order reserve does, and journals one settle entry (operation charge).
create or replace function billing.charge_credits(
  p_org_id uuid, p_amount bigint, p_idempotency_key text, p_ref text default null)
returns billing.credit_entries
language plpgsql security definer
set search_path = ''
set plan_cache_mode = force_generic_plan
set enable_seqscan = off
as $$
declare
  v_acct billing.credit_accounts;
  v_entry billing.credit_entries;
begin
  if p_amount is null or p_amount <= 0 then
    raise exception 'a charge must be positive' using errcode = '22023';
  end if;
  if p_idempotency_key is null or p_idempotency_key = '' then
    raise exception 'a charge needs an idempotency key' using errcode = '22023';
  end if;
  -- Spend on the account if enough is available: this update is also the account's lock.
  update billing.credit_accounts
  set balance = balance - p_amount, updated_at = now()
  where org_id = p_org_id and balance - reserved >= p_amount
  returning * into v_acct;
  if not found then
    -- Not enough (or no account yet): a replay still answers; otherwise nothing changed.
    v_acct := private.lock_credit_account(p_org_id);
    select * into v_entry from billing.credit_entries e
    where e.org_id = p_org_id and e.operation = 'charge' and e.idempotency_key = p_idempotency_key and e.kind = 'settle';
    if not found then
      raise exception 'insufficient credits: % available, % needed', v_acct.balance - v_acct.reserved, p_amount
        using errcode = 'PT402';
    end if;
  else
    insert into billing.credit_entries (org_id, operation, kind, balance_delta, reserved_delta, debt_delta,
                                        balance_after, reserved_after, debt_after, idempotency_key, ref)
    values (p_org_id, 'charge', 'settle', -p_amount, 0, 0, v_acct.balance, v_acct.reserved, v_acct.debt, p_idempotency_key, p_ref)
    on conflict (org_id, operation, idempotency_key, kind) where operation in ('grant', 'charge', 'claw_back') do nothing
    returning * into v_entry;
    if found then
      -- Spend from the first grant in draw order when it covers it all (the common case); else draw.
      update billing.credit_grants c set remaining = c.remaining - p_amount
      from (select id from billing.credit_grants
            where org_id = p_org_id and expired_at is null and remaining > held
            order by priority, expires_at nulls last, created_at, id limit 1) f
      where c.id = f.id and c.remaining - c.held >= p_amount;
      if not found then
        perform private.credit_draw(p_org_id, p_amount, false);
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
comment on function billing.charge_credits(uuid, bigint, text, text) is 'Spends credits at once for work whose price is known up front: no reservation, one journal entry (returned). Idempotent by key: a replay returns the original entry; the same key with another amount is refused (22023). Fails with PT402 (HTTP 402) when too few are available, changing nothing.';

create or replace function billing.void_credits(p_reservation_id uuid)
returns billing.credit_reservations
language plpgsql security definer
set search_path = ''
as $$
begin
  return private.credit_resolve(p_reservation_id, 'voided', 0);
end
$$;
comment on function billing.void_credits(uuid) is 'Releases a pending reservation without spending. Voiding again is a no-op.';

-- Expires stale reservations and past-due grants; the worker runs it every minute. A grant
-- loses its unheld credits now and its held ones when their reservations resolve. Each item
-- runs in its own subtransaction: one that fails is rolled back alone, counted in failures and
-- reported as a warning, and is tried again on the next run.
drop function billing.expire_credits(timestamptz, uuid);
create function billing.expire_credits(p_now timestamptz default now(), p_org_id uuid default null)
returns table (reservations int, grants int, failures int)
language plpgsql security definer
set search_path = ''
as $$
declare
  a record;
  r record;
  v_res int := 0;
  v_grants int := 0;
  v_failed int := 0;
  v_free bigint;
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
      perform private.lock_credit_account(r.org_id);
      select remaining - held into v_free from billing.credit_grants where id = r.id and expired_at is null;
      continue when not found;
      update billing.credit_grants set expired_at = p_now, remaining = held where id = r.id;
      if v_free > 0 then
        perform private.credit_move(r.org_id, 'expire', 'expire', -v_free, 0, 0, r.id::text, r.id);
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
comment on function billing.expire_credits(timestamptz, uuid) is 'Expires pending reservations past their expires_at and grants past theirs, for one org or (null) all. Each item on its own: one that fails is counted in failures (and logged as a warning) without stopping the rest. Safe to run any number of times.';

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
  v_prev_taken bigint;
  v_prev_debt bigint;
begin
  if p_amount is null or p_amount <= 0 then
    raise exception 'a claw-back must be positive' using errcode = '22023';
  end if;
  if p_idempotency_key is null or p_idempotency_key = '' then
    raise exception 'a claw-back needs an idempotency key' using errcode = '22023';
  end if;
  perform private.lock_credit_account(p_org_id);
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
  for g in
    select id, remaining - held as free from billing.credit_grants
    where org_id = p_org_id and expired_at is null and remaining > held
    order by (id = p_grant_id) desc, priority, expires_at nulls last, created_at, id
  loop
    exit when v_left = 0;
    v_take := least(g.free, v_left);
    update billing.credit_grants set remaining = remaining - v_take where id = g.id;
    v_left := v_left - v_take;
    v_taken := v_taken + v_take;
  end loop;
  if v_taken > 0 then
    perform private.credit_move(p_org_id, 'claw_back', 'clawback', -v_taken, 0, 0, p_idempotency_key, p_grant_id);
  end if;
  if v_left > 0 then
    perform private.credit_move(p_org_id, 'claw_back', 'debt', 0, 0, v_left, p_idempotency_key, p_grant_id);
  end if;
  return query select v_taken, v_left;
end
$$;
comment on function billing.claw_back_credits(uuid, bigint, text, uuid) is 'For refunds and disputes: removes up to p_amount unspent credits (the named grant first) and records the rest as debt. Idempotent by key (the same key with another amount is refused, 22023).';

-- ---------------------------------------------------------------------------
-- Access: the operations are for the service role (and other modules' security-definer RPCs).
-- ---------------------------------------------------------------------------

revoke all on function
  billing.charge_credits(uuid, bigint, text, text),
  billing.expire_credits(timestamptz, uuid)
  from public, anon, authenticated;
grant execute on function
  billing.charge_credits(uuid, bigint, text, text),
  billing.expire_credits(timestamptz, uuid)
  to service_role;
