-- Webhooks and the outbox at volume (issue #8 §3):
-- * the outbox is dispatched in parallel partitions by org (a fixed hash of org_id), each
--   partition by one dispatcher at a time, in seq order, so events of one org stay in order;
-- * webhook deliveries are claimed and recorded in batches, each claim under its own lease id,
--   so a result that outlived its lease (a replay or recover reset the message meanwhile) is
--   logged but never settles the new attempt;
-- * the hourly digest finds the users at 08:00 local time through an index on their zone
--   instead of reading every profile.

-- ---------------------------------------------------------------------------
-- Outbox partitions
-- ---------------------------------------------------------------------------

-- The dispatch partition of an org: its id's last byte modulo 8 (ids are random uuids, so the
-- partitions are even). Fixed, because the index below is built on it; functions/_shared/events/
-- dispatcher.ts runs one claim loop per partition (OUTBOX_PARTITIONS there must match).
create or replace function private.outbox_partition(p_org_id uuid) returns int
language sql immutable parallel safe
set search_path = ''
as $$
  select get_byte(uuid_send(p_org_id), 15) % 8
$$;
revoke all on function private.outbox_partition(uuid) from public;
grant execute on function private.outbox_partition(uuid) to service_role;
comment on function private.outbox_partition(uuid) is 'Outbox dispatch partition (0-7) of an org. One dispatcher at a time works a partition, in seq order, so an org''s events reach consumers in the order they were written while other orgs'' events are dispatched in parallel.';

-- Each partition's undispatched events in seq order: the dispatcher's claim reads exactly its
-- partition's next events, however many dispatched events the table holds.
create index events_undispatched_idx on notify.events (private.outbox_partition(org_id), seq)
  where dispatched_at is null;

-- ---------------------------------------------------------------------------
-- Webhook leases
-- ---------------------------------------------------------------------------

alter table notify.webhook_messages add column lease_id uuid;
comment on column notify.webhook_messages.lease_id is 'Identifies the attempt that holds (or last held) the message. Each claim takes a new one; a result is settled only under the lease it was claimed with, so an attempt that outlived its lease (the message was replayed, recovered or claimed again meanwhile) is logged in webhook_attempts but changes nothing.';

-- Takes up to all the given messages for one attempt each, in one statement's worth of locks
-- (message id order, skipping rows another transaction holds). One row per id comes back:
-- outcome 'claimed' with everything the delivery needs, or why not ('busy' while another
-- attempt or transaction holds it; the job is then retried by pg-boss).
create or replace function private.claim_webhook_messages(
  p_ids uuid[], p_now timestamptz, p_lease interval, p_early interval default interval '2 seconds')
returns table (message_id uuid, outcome text, lease_id uuid, org_id uuid, endpoint_id uuid, url text,
               attempt int, secrets text[], event jsonb)
language plpgsql security definer
set search_path = ''
as $$
#variable_conflict use_column
declare
  r record;
  v_lease uuid;
  v_seen uuid[] := '{}';
begin
  -- The ordinary case in one statement: due messages of active endpoints, pending or with a
  -- lease run out (its worker died before recording a result: that gets an attempt row saying so).
  for r in
    with t as (
      select x.id, x.status as was
      from notify.webhook_messages x
      join notify.webhook_endpoints e on e.id = x.endpoint_id
      where x.id = any (p_ids) and e.status = 'active'
        and ((x.status = 'pending' and x.next_attempt_at <= p_now + p_early)
             or (x.status = 'delivering' and x.locked_until <= p_now))
      order by x.id
      for update of x skip locked
    ), c as (
      update notify.webhook_messages m
      set status = 'delivering', attempt_count = m.attempt_count + 1, last_attempt_at = p_now,
          locked_until = p_now + p_lease, lease_id = gen_random_uuid()
      from t where m.id = t.id
      returning m.id, m.lease_id, m.org_id, m.endpoint_id, m.event_id, m.attempt_count, t.was
    ), dead as (
      insert into notify.webhook_attempts (org_id, message_id, endpoint_id, attempt, attempted_at, error)
      select c.org_id, c.id, c.endpoint_id, greatest(1, c.attempt_count - 1), p_now,
             'no result recorded: the worker stopped during this attempt'
      from c where c.was = 'delivering'
    )
    select c.id, c.lease_id, c.org_id, c.endpoint_id, c.attempt_count, e.url,
           array(select s.secret from notify.webhook_secrets s
                 where s.endpoint_id = c.endpoint_id and (s.expires_at is null or s.expires_at > p_now)
                 order by s.created_at desc) as secrets,
           jsonb_build_object('id', ev.id, 'seq', ev.seq, 'org_id', ev.org_id, 'type', ev.type,
             'schema_version', ev.schema_version, 'subject_kind', ev.subject_kind, 'subject_id', ev.subject_id,
             'actor_user_id', ev.actor_user_id, 'actor_api_key_id', ev.actor_api_key_id, 'payload', ev.payload,
             'occurred_at', ev.occurred_at) as event
    from c
    join notify.webhook_endpoints e on e.id = c.endpoint_id
    join notify.events ev on ev.id = c.event_id
  loop
    v_seen := v_seen || r.id;
    return query select r.id, 'claimed', r.lease_id, r.org_id, r.endpoint_id, r.url, r.attempt_count, r.secrets, r.event;
  end loop;

  -- The rest one by one, to say why not (or to take one that became due meanwhile).
  for r in
    select m.id, m.org_id, m.endpoint_id, m.event_id, m.status, m.attempt_count, m.next_attempt_at, m.locked_until,
           e.url, e.status as endpoint_status
    from notify.webhook_messages m
    join notify.webhook_endpoints e on e.id = m.endpoint_id
    where m.id = any (p_ids) and not (m.id = any (v_seen))
    order by m.id
    for update of m skip locked
  loop
    v_seen := v_seen || r.id;
    if r.status in ('succeeded', 'failed') then
      return query select r.id, 'message already ' || r.status, null::uuid, r.org_id, r.endpoint_id, null::text, null::int, null::text[], null::jsonb;
      continue;
    end if;
    if r.endpoint_status <> 'active' then
      update notify.webhook_messages m set status = 'failed', locked_until = null, last_error = 'endpoint disabled'
      where m.id = r.id;
      return query select r.id, 'endpoint disabled', null::uuid, r.org_id, r.endpoint_id, null::text, null::int, null::text[], null::jsonb;
      continue;
    end if;
    if r.status = 'pending' and r.next_attempt_at > p_now + p_early then
      -- A stale or duplicate job: the one scheduled for next_attempt_at will come.
      return query select r.id, 'not due yet', null::uuid, r.org_id, r.endpoint_id, null::text, null::int, null::text[], null::jsonb;
      continue;
    end if;
    if r.status = 'delivering' then
      if r.locked_until > p_now then
        return query select r.id, 'busy', null::uuid, r.org_id, r.endpoint_id, null::text, null::int, null::text[], null::jsonb;
        continue;
      end if;
      -- The previous attempt's worker died before recording a result: say so, then go again.
      insert into notify.webhook_attempts (org_id, message_id, endpoint_id, attempt, attempted_at, error)
      values (r.org_id, r.id, r.endpoint_id, greatest(1, r.attempt_count), p_now,
              'no result recorded: the worker stopped during this attempt');
    end if;
    v_lease := gen_random_uuid();
    update notify.webhook_messages m
    set status = 'delivering', attempt_count = r.attempt_count + 1, last_attempt_at = p_now,
        locked_until = p_now + p_lease, lease_id = v_lease
    where m.id = r.id;
    return query
      select r.id, 'claimed', v_lease, r.org_id, r.endpoint_id, r.url, r.attempt_count + 1,
             array(select s.secret from notify.webhook_secrets s
                   where s.endpoint_id = r.endpoint_id and (s.expires_at is null or s.expires_at > p_now)
                   order by s.created_at desc),
             (select jsonb_build_object('id', ev.id, 'seq', ev.seq, 'org_id', ev.org_id, 'type', ev.type,
                       'schema_version', ev.schema_version, 'subject_kind', ev.subject_kind, 'subject_id', ev.subject_id,
                       'actor_user_id', ev.actor_user_id, 'actor_api_key_id', ev.actor_api_key_id, 'payload', ev.payload,
                       'occurred_at', ev.occurred_at)
              from notify.events ev where ev.id = r.event_id);
  end loop;
  -- The rest either does not exist or was skipped because another transaction holds it.
  return query
    select x.id, case when exists (select 1 from notify.webhook_messages m where m.id = x.id) then 'busy' else 'missing' end,
           null::uuid, null::uuid, null::uuid, null::text, null::int, null::text[], null::jsonb
    from unnest(p_ids) as x(id)
    where x.id is not null and not (x.id = any (v_seen));
end
$$;
revoke all on function private.claim_webhook_messages(uuid[], timestamptz, interval, interval) from public;
grant execute on function private.claim_webhook_messages(uuid[], timestamptz, interval, interval) to service_role;
comment on function private.claim_webhook_messages(uuid[], timestamptz, interval, interval) is 'The worker''s batched claim: every due message among p_ids gets a new lease (lease_id, locked_until = p_now + p_lease) and its attempt number; the others say why not (missing, message already succeeded/failed, endpoint disabled, not due yet, busy).';

-- Records a batch of attempts and settles each message whose lease is still the one it was
-- claimed with. p_results is a JSON array of {message_id, lease_id, org_id, endpoint_id,
-- attempt, status_code, latency_ms, snippet, error, retry_at}; error null means a 2xx;
-- retry_at is when to try again after a failure (null: retries are exhausted).
-- Locks go endpoint by endpoint in id order, each endpoint before its messages (the order
-- disable_webhook_endpoint takes them in), so concurrent recorders and disables queue instead of
-- deadlocking. An endpoint that answers keeps its row shared, not exclusive: batches of one
-- busy endpoint settle side by side.
create or replace function private.record_webhook_attempts(p_now timestamptz, p_results jsonb)
returns table (message_id uuid, outcome text, next_attempt_at timestamptz)
language plpgsql security definer
set search_path = ''
as $$
#variable_conflict use_column
declare
  v_ep record;
  v_failing timestamptz;
  v_disable text;
begin
  if jsonb_typeof(p_results) is distinct from 'array' then
    raise exception 'results must be a JSON array' using errcode = '22023';
  end if;
  for v_ep in
    select x.endpoint_id, bool_or(x.error is null) as any_ok, bool_or(x.status_code = 410) as gone
    from jsonb_to_recordset(p_results) as x(endpoint_id uuid, error text, status_code int)
    group by x.endpoint_id
    order by x.endpoint_id
  loop
    v_disable := null;
    select e.failing_since into v_failing from notify.webhook_endpoints e where e.id = v_ep.endpoint_id;
    if not found then
      continue; -- deleted meanwhile: its messages and attempts went with it
    end if;
    if v_ep.any_ok and v_failing is null and not v_ep.gone then
      perform 1 from notify.webhook_endpoints e where e.id = v_ep.endpoint_id for share;
    else
      perform 1 from notify.webhook_endpoints e where e.id = v_ep.endpoint_id for update;
      if v_ep.any_ok then
        -- It answers: the failing streak is over (written only when there is one).
        update notify.webhook_endpoints e set failing_since = null where e.id = v_ep.endpoint_id and e.failing_since is not null;
      else
        update notify.webhook_endpoints e set failing_since = p_now where e.id = v_ep.endpoint_id and e.failing_since is null;
        select e.failing_since into v_failing from notify.webhook_endpoints e where e.id = v_ep.endpoint_id;
        if p_now - v_failing >= interval '5 days' then
          v_disable := format('every delivery failed for 5 days (since %s)',
                              to_char(v_failing at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'));
        end if;
      end if;
      if v_ep.gone then
        v_disable := 'the endpoint answered 410 Gone';
      end if;
    end if;

    -- This endpoint's results: every attempt logged (for messages that still exist), then each
    -- message settled only under our own lease: a replay, recover or newer claim in the meantime
    -- has the last word.
    insert into notify.webhook_attempts (org_id, message_id, endpoint_id, attempt, attempted_at, status_code,
                                         latency_ms, response_snippet, error)
    select x.org_id, x.message_id, x.endpoint_id, x.attempt, p_now, x.status_code, x.latency_ms, left(x.snippet, 500), x.error
    from jsonb_to_recordset(p_results) as x(message_id uuid, org_id uuid, endpoint_id uuid, attempt int, status_code int,
                                            latency_ms int, snippet text, error text)
    where x.endpoint_id = v_ep.endpoint_id
      and exists (select 1 from notify.webhook_messages m where m.id = x.message_id)
    order by x.message_id;

    return query
    with x as (
      select * from jsonb_to_recordset(p_results) as x(message_id uuid, lease_id uuid, endpoint_id uuid, status_code int,
                                                       error text, retry_at timestamptz)
      where x.endpoint_id = v_ep.endpoint_id
    ), settled as (
      update notify.webhook_messages m
      set status = case when x.error is null then 'succeeded'
                        when v_disable is not null or x.retry_at is null then 'failed'
                        else 'pending' end,
          locked_until = null, last_status_code = x.status_code, last_error = x.error,
          next_attempt_at = case when x.error is not null and v_disable is null and x.retry_at is not null
                                 then x.retry_at else m.next_attempt_at end,
          delivered_at = case when x.error is null then p_now else m.delivered_at end
      from x
      where m.id = x.message_id and m.lease_id = x.lease_id and m.status = 'delivering'
      returning m.id, m.status
    )
    select x.message_id,
           case when u.id is null then 'superseded'
                when u.status = 'succeeded' then 'succeeded'
                when v_disable is not null then 'disabled'
                when u.status = 'failed' then 'failed'
                else 'retrying' end,
           case when u.status = 'pending' then x.retry_at end
    from x left join settled u on u.id = x.message_id
    where exists (select 1 from notify.webhook_messages m where m.id = x.message_id);

    if v_disable is not null then
      perform private.disable_webhook_endpoint(v_ep.endpoint_id, v_disable);
    end if;
  end loop;
end
$$;
revoke all on function private.record_webhook_attempts(timestamptz, jsonb) from public;
grant execute on function private.record_webhook_attempts(timestamptz, jsonb) to service_role;
comment on function private.record_webhook_attempts(timestamptz, jsonb) is 'The worker''s batched result write: logs every attempt, settles each message held under the lease it was claimed with (succeeded, retrying at retry_at, failed), tracks the endpoint''s failing streak and disables it on 410 Gone or 5 days of failure. Outcome superseded: the lease had moved on and nothing was settled.';

-- ---------------------------------------------------------------------------
-- Digest: by zone, through an index, instead of a scan of every profile
-- ---------------------------------------------------------------------------

create index profiles_timezone_idx on public.profiles (timezone, id);

-- The zones in use whose local hour at p_now is 8: a skip scan over profiles_timezone_idx (one
-- index probe per distinct zone), so the hourly run costs the number of zones, not of users.
create or replace function private.digest_zones(p_now timestamptz) returns text[]
language sql stable security definer
set search_path = ''
as $$
  with recursive zones (tz) as (
    (select p.timezone from public.profiles p order by p.timezone limit 1)
    union all
    select (select p.timezone from public.profiles p where p.timezone > z.tz order by p.timezone limit 1)
    from zones z where z.tz is not null
  )
  select coalesce(array_agg(z.tz), '{}') from zones z
  where z.tz is not null and extract(hour from p_now at time zone z.tz) = 8
$$;
revoke all on function private.digest_zones(timestamptz) from public;
grant execute on function private.digest_zones(timestamptz) to service_role;

create or replace function private.claim_notification_digests(p_now timestamptz, p_limit int default 500)
returns table (user_id uuid, email text, display_name text, items jsonb)
language plpgsql security definer
set search_path = ''
as $$
#variable_conflict use_column
declare
  v_zones text[] := private.digest_zones(p_now);
begin
  return query
  with due_users as (
    select p.id, p.display_name
    from public.profiles p
    where p.timezone = any (v_zones)
      and exists (select 1 from notify.notifications n
                  where n.user_id = p.id and n.digested_at is null and n.emailed_at is null
                    and n.created_at <= p_now and n.created_at > p_now - interval '7 days'
                    and private.notification_channel_enabled(n.user_id, n.type, 'email_digest'))
    -- The index's own order: one ordered index scan per zone, no sort of the zone's users.
    order by p.timezone, p.id
    limit p_limit
  ), due as (
    select n.id from notify.notifications n join due_users d on d.id = n.user_id
    where n.digested_at is null and n.emailed_at is null
      and n.created_at <= p_now and n.created_at > p_now - interval '7 days'
      and private.notification_channel_enabled(n.user_id, n.type, 'email_digest')
    for update of n skip locked
  ), claimed as (
    update notify.notifications n set digested_at = now()
    from due where n.id = due.id
    returning n.*
  )
  select c.user_id, u.email::text, d.display_name,
         jsonb_agg(jsonb_build_object('id', c.id, 'type', c.type, 'title', c.title, 'body', c.body, 'link', c.link,
                                      'org_name', o.name, 'created_at', c.created_at) order by c.created_at)
  from claimed c
  join due_users d on d.id = c.user_id
  join auth.users u on u.id = c.user_id
  join public.orgs o on o.id = c.org_id
  group by c.user_id, u.email, d.display_name;
end
$$;
revoke all on function private.claim_notification_digests(timestamptz, int) from public;
grant execute on function private.claim_notification_digests(timestamptz, int) to service_role;
