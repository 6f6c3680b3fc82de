-- Core hardening, security part (issue #8 §1): findings 1, 5 and 6 and two smaller ones.
--   1. Webhook endpoints whose stored filter names a sensitive event type are managed only by
--      callers who may subscribe to those types (members.manage): every change, replay,
--      recovery, test and deletion goes through one check of the stored and the new filter.
--   5. The audit log is a hash chain per org, so that tampering by the table owner (who can
--      disable the append-only trigger) is detectable with notify.verify_audit_chain(org).
--   6. API keys do not outlive their creator's rights: removal, leaving or losing permissions
--      (a new role, or a custom role's permissions cut) revokes the keys whose scopes exceed what
--      the creator now holds, unless the org sets api_keys_survive_creator.
--   Smaller: private.role_rank/role_permissions answer only for the caller's orgs;
--   billing.current_plan (and so entitled and limit_of) answers nothing to an MFA-blocked member.

-- ===========================================================================
-- 1. Sensitive webhook endpoints
-- ===========================================================================

-- Whether a filter makes an endpoint receive sensitive events. An empty filter means every
-- NON-sensitive type (see the fan-out in functions/_shared/webhooks/consumer.ts), so only a
-- filter that names a sensitive type counts.
create or replace function private.names_sensitive_event_type(p_event_types text[]) returns boolean
language sql stable security definer
set search_path = ''
as $$
  select exists (select 1 from notify.event_types t where t.sensitive and t.type = any (coalesce(p_event_types, '{}')))
$$;
revoke all on function private.names_sensitive_event_type(text[]) from public;

create or replace function private.assert_may_subscribe(p_org_id uuid, p_event_types text[]) returns void
language plpgsql stable security definer
set search_path = ''
as $$
begin
  if private.names_sensitive_event_type(p_event_types) and not private.has_permission(p_org_id, 'members.manage') then
    raise exception 'subscribing to sensitive event types needs members.manage' using errcode = '42501';
  end if;
end
$$;
revoke all on function private.assert_may_subscribe(uuid, text[]) from public;

-- The one check every endpoint RPC makes: the caller may manage webhooks in the endpoint's org
-- AND may subscribe to what the endpoint receives now (its stored filter) and, when a new filter
-- is given, to what it would receive. Without this, someone with webhooks.manage alone could
-- point an approved endpoint for invitee emails at their own URL, re-enable it, rotate its
-- secret, or replay and recover its past messages.
-- Endpoints of orgs the caller is not in do not exist for them (PT404); missing webhooks.manage
-- or members.manage (for a sensitive endpoint) is 42501.
create or replace function private.manageable_webhook_endpoint(p_endpoint_id uuid, p_new_event_types text[])
returns notify.webhook_endpoints
language plpgsql stable security definer
set search_path = ''
as $$
declare
  v_endpoint notify.webhook_endpoints;
begin
  select * into v_endpoint from notify.webhook_endpoints e where e.id = p_endpoint_id;
  if v_endpoint.id is null or v_endpoint.org_id not in (select private.member_org_ids()) then
    raise exception 'webhook endpoint not found' using errcode = 'PT404';
  end if;
  perform private.require_permission(v_endpoint.org_id, 'webhooks.manage');
  if private.names_sensitive_event_type(v_endpoint.event_types) and not private.has_permission(v_endpoint.org_id, 'members.manage') then
    raise exception 'this endpoint receives sensitive event types (%); managing it needs members.manage',
      (select string_agg(t, ', ' order by t) from unnest(v_endpoint.event_types) t
       where t in (select et.type from notify.event_types et where et.sensitive))
      using errcode = '42501';
  end if;
  perform private.assert_may_subscribe(v_endpoint.org_id, p_new_event_types);
  return v_endpoint;
end
$$;
revoke all on function private.manageable_webhook_endpoint(uuid, text[]) from public;

-- The one-argument form (no new filter) stays for existing callers.
create or replace function private.manageable_webhook_endpoint(p_endpoint_id uuid) returns notify.webhook_endpoints
language sql stable security definer
set search_path = ''
as $$
  select private.manageable_webhook_endpoint(p_endpoint_id, null::text[])
$$;
revoke all on function private.manageable_webhook_endpoint(uuid) from public;

comment on column notify.webhook_endpoints.event_types is 'Event types this endpoint receives (keys of notify.event_types); empty means every non-sensitive type. Sensitive types must be named, which needs members.manage, and while the filter names one every change to the endpoint (url, status, filter, secret, replay, recover, test, delete) needs members.manage too.';

create or replace function public.update_webhook_endpoint(
  p_endpoint_id uuid, p_url text default null, p_description text default null,
  p_event_types text[] default null, p_status text default null)
returns setof notify.webhook_endpoints
language plpgsql security definer
set search_path = ''
as $$
begin
  perform private.manageable_webhook_endpoint(p_endpoint_id, p_event_types);
  if p_status is not null and p_status not in ('active', 'disabled') then
    raise exception 'status must be active or disabled' using errcode = '22023';
  end if;
  perform private.check_webhook_endpoint_input(btrim(p_url), p_description, p_event_types);
  -- Lock the row and check again under the lock: a concurrent change of the filter by someone
  -- else (to a sensitive one) must not slip between the check and this write.
  perform 1 from notify.webhook_endpoints e where e.id = p_endpoint_id for update;
  perform private.manageable_webhook_endpoint(p_endpoint_id, p_event_types);
  return query
  update notify.webhook_endpoints e
  set url = coalesce(btrim(p_url), e.url),
      description = coalesce(p_description, e.description),
      event_types = case when p_event_types is null then e.event_types
                         else array(select distinct unnest(p_event_types) order by 1) end,
      status = coalesce(p_status, e.status),
      -- Re-enabling starts afresh; disabling by hand says so.
      disabled_reason = case when coalesce(p_status, e.status) = 'active' then null
                             when e.status = 'active' then 'disabled by a user' else e.disabled_reason end,
      disabled_at = case when coalesce(p_status, e.status) = 'active' then null
                         when e.status = 'active' then now() else e.disabled_at end,
      failing_since = case when p_status = 'active' and e.status = 'disabled' then null else e.failing_since end
  where e.id = p_endpoint_id
  returning e.*;
end
$$;
comment on function public.update_webhook_endpoint(uuid, text, text, text[], text) is 'Changes an endpoint''s url, description, event-type filter or status (active/disabled); null leaves a field as it is. Needs webhooks.manage; an endpoint whose current or new filter names a sensitive event type also needs members.manage (42501).';

create or replace function public.delete_webhook_endpoint(p_endpoint_id uuid)
returns void
language plpgsql security definer
set search_path = ''
as $$
begin
  perform private.manageable_webhook_endpoint(p_endpoint_id, null);
  delete from notify.webhook_endpoints where id = p_endpoint_id;
end
$$;
comment on function public.delete_webhook_endpoint(uuid) is 'Deletes an endpoint with its secrets, messages and attempts. Needs webhooks.manage; an endpoint whose filter names a sensitive event type also needs members.manage.';

create or replace function public.rotate_webhook_secret(p_endpoint_id uuid, p_overlap interval default interval '24 hours')
returns table (secret text, previous_expires_at timestamptz)
language plpgsql security definer
set search_path = ''
as $$
declare
  v_endpoint notify.webhook_endpoints := private.manageable_webhook_endpoint(p_endpoint_id, null);
  v_secret text := private.new_webhook_secret();
  v_expires timestamptz := now() + p_overlap;
begin
  if p_overlap is null or p_overlap < interval '0' or p_overlap > interval '7 days' then
    raise exception 'overlap must be between 0 and 7 days' using errcode = '22023';
  end if;
  -- Serialize rotations of one endpoint, then retire every secret still valid.
  perform 1 from notify.webhook_endpoints e where e.id = p_endpoint_id for update;
  delete from notify.webhook_secrets s where s.endpoint_id = p_endpoint_id and s.expires_at <= now();
  update notify.webhook_secrets s set expires_at = least(coalesce(s.expires_at, 'infinity'), v_expires)
  where s.endpoint_id = p_endpoint_id;
  insert into notify.webhook_secrets (org_id, endpoint_id, secret) values (v_endpoint.org_id, p_endpoint_id, v_secret);
  return query select v_secret, v_expires;
end
$$;
comment on function public.rotate_webhook_secret(uuid, interval) is 'Issues a new signing secret and returns it, once. Older secrets keep signing for p_overlap (default 24 hours, at most 7 days) so receivers can switch without dropping deliveries. Needs webhooks.manage; an endpoint whose filter names a sensitive event type also needs members.manage.';

create or replace function public.replay_webhook_message(p_message_id uuid)
returns uuid
language plpgsql security definer
set search_path = ''
as $$
declare
  v_endpoint_id uuid;
  v_endpoint notify.webhook_endpoints;
begin
  select m.endpoint_id into v_endpoint_id from notify.webhook_messages m where m.id = p_message_id;
  if v_endpoint_id is null then
    raise exception 'webhook message not found' using errcode = 'PT404';
  end if;
  v_endpoint := private.manageable_webhook_endpoint(v_endpoint_id, null);
  if v_endpoint.status <> 'active' then
    raise exception 'the endpoint is disabled; re-enable it before replaying' using errcode = '22023';
  end if;
  -- Not while an attempt holds the message: its result would be taken for the replay's.
  update notify.webhook_messages
  set status = 'pending', attempt_count = 0, next_attempt_at = now(), locked_until = null
  where id = p_message_id and not (status = 'delivering' and locked_until > now());
  if not found then
    raise exception 'a delivery attempt of this message is in flight; replay it when it has finished' using errcode = '22023';
  end if;
  return p_message_id;
end
$$;
comment on function public.replay_webhook_message(uuid) is 'Delivers a message again, with the same webhook-id, starting a new retry cycle. The api route queues it at once; called directly, the worker''s sweep picks it up within a minute. Needs webhooks.manage; messages of an endpoint whose filter names a sensitive event type also need members.manage.';

create or replace function public.recover_webhook_messages(p_org_id uuid, p_since timestamptz, p_endpoint_id uuid default null)
returns setof uuid
language plpgsql security definer
set search_path = ''
as $$
declare
  v_all boolean;
begin
  perform private.require_permission(p_org_id, 'webhooks.manage');
  if p_since is null or p_since > now() then
    raise exception 'since must be a time in the past' using errcode = '22023';
  end if;
  if p_endpoint_id is not null then
    -- One endpoint: the same check as every other change (404 if it is not in this org).
    if (private.manageable_webhook_endpoint(p_endpoint_id, null)).org_id <> p_org_id then
      raise exception 'webhook endpoint not found' using errcode = 'PT404';
    end if;
  end if;
  -- The whole org: endpoints that receive sensitive types are left out for callers without
  -- members.manage (they may not manage those endpoints).
  v_all := private.has_permission(p_org_id, 'members.manage');
  -- At most 1,000 per call (oldest first), so one request stays small; call again for the rest.
  return query
  update notify.webhook_messages m
  set status = 'pending', attempt_count = 0, next_attempt_at = now(), locked_until = null
  where m.id in (
    select x.id from notify.webhook_messages x
    join notify.webhook_endpoints e on e.id = x.endpoint_id and e.status = 'active'
    where x.org_id = p_org_id and x.status = 'failed' and x.created_at >= p_since
      and (p_endpoint_id is null or x.endpoint_id = p_endpoint_id)
      and (v_all or not private.names_sensitive_event_type(e.event_types))
    order by x.created_at
    limit 1000)
  returning m.id;
end
$$;
comment on function public.recover_webhook_messages(uuid, timestamptz, uuid) is 'Re-queues failed messages of the org (optionally of one endpoint) created since p_since, on active endpoints, oldest first and at most 1,000 per call; returns their ids. Needs webhooks.manage. Endpoints whose filter names a sensitive event type need members.manage too: naming one is refused (42501), and an org-wide call without it leaves them out.';

create or replace function public.send_test_webhook(p_endpoint_id uuid)
returns uuid
language plpgsql security definer
set search_path = ''
as $$
declare
  v_endpoint notify.webhook_endpoints := private.manageable_webhook_endpoint(p_endpoint_id, null);
begin
  if v_endpoint.status <> 'active' then
    raise exception 'the endpoint is disabled; re-enable it before testing' using errcode = '22023';
  end if;
  -- Travels the real path: outbox, fan-out (to this endpoint only), signed delivery.
  return private.emit_event(v_endpoint.org_id, 'webhook.test', 'webhook_endpoint', v_endpoint.id::text,
    jsonb_build_object('endpoint_id', v_endpoint.id, 'message', 'This is a test event from Plinth.'));
end
$$;
comment on function public.send_test_webhook(uuid) is 'Emits a webhook.test event delivered to this endpoint only (whatever its filter); returns the event id. Needs webhooks.manage; an endpoint whose filter names a sensitive event type also needs members.manage.';

-- ===========================================================================
-- 5. The audit log as a hash chain per org
-- ===========================================================================

alter table notify.audit_log
  add column seq bigint,
  add column prev_hash bytea,
  add column row_hash bytea,
  add column actor_user_hash bytea,
  add column actor_api_key_hash bytea;
comment on column notify.audit_log.seq is 'Position in the org''s chain: 1, 2, 3, … without gaps. A gap means a row was deleted.';
comment on column notify.audit_log.prev_hash is 'row_hash of the org''s previous row (seq - 1); null for the first.';
comment on column notify.audit_log.row_hash is 'sha256 over this row''s content and prev_hash (private.audit_row_hash). notify.verify_audit_chain recomputes it to detect rows changed, deleted or inserted out of band.';
comment on column notify.audit_log.actor_user_hash is 'sha256 of actor_user_id as written. The hash chain covers this digest rather than the id, because erasing a user nulls the id (GDPR): an id that is still set must match it.';
comment on column notify.audit_log.actor_api_key_hash is 'sha256 of actor_api_key_id as written (the key''s deletion nulls the id); an id that is still set must match it.';

create or replace function private.audit_id_hash(p_id uuid) returns bytea
language sql immutable
set search_path = ''
as $$
  select case when p_id is not null then sha256(convert_to(p_id::text, 'UTF8')) end
$$;

-- The canonical content of an audit row: every column but the hashes it is part of, with the
-- actor ids as their digests, the time as epoch microseconds (no time zone in play) and jsonb's
-- own canonical text; then sha256 over that text.
create or replace function private.audit_row_hash(r notify.audit_log) returns bytea
language sql stable
set search_path = ''
as $$
  select sha256(convert_to(jsonb_build_array(
    r.org_id, r.seq, r.id, encode(r.prev_hash, 'hex'),
    encode(r.actor_user_hash, 'hex'), encode(r.actor_api_key_hash, 'hex'), r.actor_role,
    r.action, r.target_table, r.target_id, r.before, r.after, r.request_id, r.ip, r.user_agent,
    (extract(epoch from r.occurred_at) * 1000000)::bigint)::text, 'UTF8'))
$$;
revoke all on function private.audit_id_hash(uuid), private.audit_row_hash(notify.audit_log) from public;

-- Links each new row to the org's previous one. Inserts of one org are serialized by a
-- transaction-scoped advisory lock (nothing else waits on it), and the read after the lock takes
-- a fresh snapshot, so it sees the last committed link. Under REPEATABLE READ a racing insert
-- would read a stale link; the unique (org_id, seq) index then refuses it rather than fork.
create or replace function private.audit_log_chain() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  v_prev_seq bigint;
  v_prev_hash bytea;
begin
  perform pg_advisory_xact_lock(hashtextextended('notify.audit_log:' || new.org_id::text, 0));
  select a.seq, a.row_hash into v_prev_seq, v_prev_hash
  from notify.audit_log a where a.org_id = new.org_id
  order by a.seq desc limit 1;
  new.seq := coalesce(v_prev_seq, 0) + 1;
  new.prev_hash := v_prev_hash;
  new.actor_user_hash := private.audit_id_hash(new.actor_user_id);
  new.actor_api_key_hash := private.audit_id_hash(new.actor_api_key_id);
  new.row_hash := private.audit_row_hash(new);
  return new;
end
$$;
revoke all on function private.audit_log_chain() from public;

-- Backfill: chain the rows written so far, per org in the order they were written.
alter table notify.audit_log disable trigger audit_log_append_only;
do $$
declare
  r notify.audit_log;
  v_org uuid;
  v_seq bigint;
  v_prev bytea;
begin
  for r in select * from notify.audit_log a order by a.org_id, a.occurred_at, a.id loop
    if v_org is distinct from r.org_id then
      v_org := r.org_id;
      v_seq := 0;
      v_prev := null;
    end if;
    v_seq := v_seq + 1;
    r.seq := v_seq;
    r.prev_hash := v_prev;
    r.actor_user_hash := private.audit_id_hash(r.actor_user_id);
    r.actor_api_key_hash := private.audit_id_hash(r.actor_api_key_id);
    r.row_hash := private.audit_row_hash(r);
    update notify.audit_log a
    set seq = r.seq, prev_hash = r.prev_hash, actor_user_hash = r.actor_user_hash,
        actor_api_key_hash = r.actor_api_key_hash, row_hash = r.row_hash
    where a.id = r.id;
    v_prev := r.row_hash;
  end loop;
end
$$;
alter table notify.audit_log enable trigger audit_log_append_only;

alter table notify.audit_log alter column seq set not null, alter column row_hash set not null;
create unique index audit_log_chain_idx on notify.audit_log (org_id, seq);
create trigger audit_log_chain before insert on notify.audit_log
  for each row execute function private.audit_log_chain();

comment on table notify.audit_log is 'Record of changes to security-relevant tables (members, roles, invitations, API keys, org settings, …). Clients and the service role cannot update or delete rows; rows go only with their org. Each org''s rows form a hash chain (seq, prev_hash, row_hash), so a change by the table owner (who can disable triggers) is detected by notify.verify_audit_chain.';

-- The first broken link of an org's chain, or no row when the chain is intact.
create or replace function notify.verify_audit_chain(p_org_id uuid)
returns table (seq bigint, audit_log_id uuid, problem text)
language plpgsql stable security definer
set search_path = ''
as $$
#variable_conflict use_column
begin
  if coalesce(auth.role(), 'service_role') <> 'service_role' then
    perform private.require_permission(p_org_id, 'org.manage');
  end if;
  return query
  select x.seq, x.id,
         case
           when x.seq is distinct from x.n then
             format('row(s) before this one are missing: expected seq %s, found %s', x.n, x.seq)
           when x.prev_hash is distinct from x.expected_prev then
             'does not follow the previous row (prev_hash differs): a row before it was changed, removed or inserted'
           when x.row_hash is distinct from private.audit_row_hash(x.r) then
             'its content was changed after it was written (row_hash differs)'
           when x.actor_user_id is not null and x.actor_user_hash is distinct from private.audit_id_hash(x.actor_user_id) then
             'its actor_user_id was changed after it was written'
           else
             'its actor_api_key_id was changed after it was written'
         end
  from (
    select a.seq, a.id, a.prev_hash, a.row_hash, a.actor_user_id, a.actor_user_hash, a.actor_api_key_id,
           a.actor_api_key_hash, a as r,
           row_number() over w as n,
           lag(a.row_hash) over w as expected_prev
    from notify.audit_log a
    where a.org_id = p_org_id
    window w as (order by a.seq nulls first, a.occurred_at, a.id)
  ) x
  where x.seq is distinct from x.n
     or x.prev_hash is distinct from x.expected_prev
     or x.row_hash is distinct from private.audit_row_hash(x.r)
     or (x.actor_user_id is not null and x.actor_user_hash is distinct from private.audit_id_hash(x.actor_user_id))
     or (x.actor_api_key_id is not null and x.actor_api_key_hash is distinct from private.audit_id_hash(x.actor_api_key_id))
  order by x.n
  limit 1;
end
$$;
comment on function notify.verify_audit_chain(uuid) is 'Checks an org''s audit chain and returns its first broken link (seq, row id, what is wrong), or no row when intact. Detects rows changed, deleted or inserted out of band, even by the table owner; deleting the newest rows is detected only against a head (seq, row_hash) kept elsewhere (notify.audit_chain_head). Needs org.manage; the service role may check any org.';

-- The chain's current head, to keep outside the database (a log line, an export): a later
-- verify plus a head that no longer matches shows that the newest rows were removed.
create or replace function notify.audit_chain_head(p_org_id uuid)
returns table (seq bigint, row_hash text, occurred_at timestamptz)
language plpgsql stable security definer
set search_path = ''
as $$
#variable_conflict use_column
begin
  if coalesce(auth.role(), 'service_role') <> 'service_role' then
    perform private.require_permission(p_org_id, 'org.manage');
  end if;
  return query
  select a.seq, encode(a.row_hash, 'hex'), a.occurred_at
  from notify.audit_log a where a.org_id = p_org_id order by a.seq desc limit 1;
end
$$;
comment on function notify.audit_chain_head(uuid) is 'The newest link of an org''s audit chain (seq, row_hash in hex, time), to record outside the database so that removal of the newest rows can be detected. Needs org.manage; the service role may read any org.';

revoke all on function notify.verify_audit_chain(uuid), notify.audit_chain_head(uuid) from public, anon;
grant execute on function notify.verify_audit_chain(uuid), notify.audit_chain_head(uuid) to authenticated, service_role;

-- ===========================================================================
-- 6. API keys follow their creator's rights
-- ===========================================================================

alter table public.orgs add column api_keys_survive_creator boolean not null default false;
comment on column public.orgs.api_keys_survive_creator is 'When false (the default), API keys are revoked when their creator leaves, is removed, or no longer holds every scope of the key. When true, keys stay: for orgs that want server credentials independent of people. Owners change it with set_api_keys_survive_creator().';

alter table public.api_keys add column revoked_reason text
  check (revoked_reason in ('creator_removed', 'creator_left', 'creator_lost_permissions', 'creator_deleted'));
comment on column public.api_keys.revoked_reason is 'Why the key was revoked automatically: its creator was removed, left, lost permissions its scopes need, or had their account deleted. Null for keys revoked by hand (revoke_api_key) or still live.';
grant select (revoked_reason) on public.api_keys to authenticated;

insert into notify.event_types (type, module, description, sensitive) values
  ('member.api_keys_revoked', 'tenancy', 'API keys were revoked because their creator left, was removed or lost permissions the keys'' scopes need', true);
insert into notify.notification_rules (type, recipients, title_template, body_template, link_template, default_channels) values
  ('member.api_keys_revoked', 'org_owners', 'API keys revoked in {{org_name}}',
   '{{key_count}} API key(s) created by {{user_name}} were revoked because {{why}}: {{key_names}}. Create new keys if the integrations still need them.',
   '/orgs/{{org_id}}/api-keys', '{in_app,email}');

-- Revokes the org's live keys created by a user whose scopes exceed p_permissions (all of them
-- when p_permissions is empty), unless the org keeps keys. Each revocation is audited by the
-- api_keys trigger and emits api_key.revoked; one member.api_keys_revoked event tells the owners.
create or replace function private.revoke_api_keys_beyond(
  p_org_id uuid, p_user_id uuid, p_permissions text[], p_reason text, p_role text)
returns int
language plpgsql security definer
set search_path = ''
as $$
declare
  v_keys jsonb;
  v_names text;
  v_count int;
begin
  if p_user_id is null
     or not exists (select 1 from public.orgs o where o.id = p_org_id and not o.api_keys_survive_creator) then
    return 0; -- the org is being deleted, or it keeps keys
  end if;
  with revoked as (
    update public.api_keys k set revoked_at = now(), revoked_reason = p_reason
    where k.org_id = p_org_id and k.created_by = p_user_id and k.revoked_at is null
      and not k.scopes <@ coalesce(p_permissions, '{}')
    returning k.id, k.name, k.prefix, k.scopes)
  select jsonb_agg(jsonb_build_object('api_key_id', r.id, 'name', r.name, 'prefix', r.prefix, 'scopes', to_jsonb(r.scopes))
                   order by r.name, r.id),
         string_agg('"' || r.name || '" (' || r.prefix || '…)', ', ' order by r.name, r.id),
         count(*)
    into v_keys, v_names, v_count
  from revoked r;
  if v_count > 0 then
    perform private.emit_event(p_org_id, 'member.api_keys_revoked', 'member', p_user_id::text,
      jsonb_build_object('user_id', p_user_id, 'reason', p_reason, 'role', p_role, 'api_keys', v_keys,
                         'key_count', v_count, 'key_names', v_names,
                         'why', case p_reason when 'creator_removed' then 'they were removed from the org'
                                              when 'creator_left' then 'they left the org'
                                              when 'creator_deleted' then 'their account was deleted'
                                              else 'their role no longer grants every scope of those keys' end));
  end if;
  return v_count;
end
$$;
revoke all on function private.revoke_api_keys_beyond(uuid, uuid, text[], text, text) from public;

-- A role's permissions straight from the catalogs (private.role_permissions answers only for the
-- caller's orgs, and these triggers run for whoever makes the change).
create or replace function private.role_permissions_unchecked(p_org_id uuid, p_role text) returns text[]
language sql stable security definer
set search_path = ''
as $$
  select coalesce(
    (select b.permissions from public.builtin_roles b where b.key = p_role),
    (select r.permissions from public.org_roles r where r.org_id = p_org_id and r.key = p_role),
    '{}'::text[])
$$;
revoke all on function private.role_permissions_unchecked(uuid, text) from public;

create or replace function private.revoke_keys_on_member_change() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  if tg_op = 'DELETE' then
    perform private.revoke_api_keys_beyond(old.org_id, old.user_id, '{}',
      case when old.user_id = (select auth.uid()) then 'creator_left' else 'creator_removed' end, null);
  elsif new.role is distinct from old.role then
    perform private.revoke_api_keys_beyond(new.org_id, new.user_id,
      private.role_permissions_unchecked(new.org_id, new.role), 'creator_lost_permissions', new.role);
  end if;
  return null;
end
$$;
revoke all on function private.revoke_keys_on_member_change() from public;
create trigger org_members_revoke_api_keys after update of role or delete on public.org_members
  for each row execute function private.revoke_keys_on_member_change();

-- Deleting a user (erasure) removes their memberships, but the api_keys.created_by foreign key
-- may be nulled first, so their keys are revoked before the row goes (team orgs only: a
-- personal org goes with its user, keys and all).
create or replace function private.revoke_keys_on_user_deletion() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  v_org uuid;
begin
  for v_org in
    select distinct k.org_id from public.api_keys k join public.orgs o on o.id = k.org_id
    where k.created_by = old.id and k.revoked_at is null and o.kind = 'team'
    order by k.org_id
  loop
    perform private.revoke_api_keys_beyond(v_org, old.id, '{}', 'creator_deleted', null);
  end loop;
  return old;
end
$$;
revoke all on function private.revoke_keys_on_user_deletion() from public;
-- Named to run after on_auth_user_deleting (the sole-owner guard): triggers fire in name order.
create trigger on_auth_user_deleting_revoke_keys before delete on auth.users
  for each row execute function private.revoke_keys_on_user_deletion();

-- Cutting a custom role's permissions is a demotion of everyone who holds it.
create or replace function private.revoke_keys_on_role_change() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  v_user uuid;
begin
  if new.permissions @> old.permissions then
    return null;
  end if;
  for v_user in select m.user_id from public.org_members m where m.org_id = new.org_id and m.role = new.key loop
    perform private.revoke_api_keys_beyond(new.org_id, v_user, new.permissions, 'creator_lost_permissions', new.key);
  end loop;
  return null;
end
$$;
revoke all on function private.revoke_keys_on_role_change() from public;
create trigger org_roles_revoke_api_keys after update of permissions on public.org_roles
  for each row execute function private.revoke_keys_on_role_change();

create or replace function public.set_api_keys_survive_creator(p_org_id uuid, p_survive boolean)
returns public.orgs
language plpgsql security definer
set search_path = ''
as $$
declare
  v_org public.orgs;
begin
  perform private.require_permission(p_org_id, 'org.manage');
  if p_survive is null then
    raise exception 'p_survive must be true or false' using errcode = '22023';
  end if;
  if private.member_role(p_org_id, (select auth.uid())) is distinct from 'owner' then
    raise exception 'only an owner can change whether API keys survive their creator' using errcode = '42501';
  end if;
  update public.orgs set api_keys_survive_creator = p_survive where id = p_org_id returning * into v_org;
  return v_org;
end
$$;
comment on function public.set_api_keys_survive_creator(uuid, boolean) is 'Owners only: true keeps API keys when their creator leaves, is removed or loses permissions; false (the default) revokes the keys whose scopes the creator no longer holds.';
revoke all on function public.set_api_keys_survive_creator(uuid, boolean) from public, anon;
grant execute on function public.set_api_keys_survive_creator(uuid, boolean) to authenticated, service_role;

-- ===========================================================================
-- Smaller: custom roles of other orgs, and plans of MFA-blocked members
-- ===========================================================================

-- Whether the caller may learn about an org's roles: SQL without a client's claims (migrations,
-- the worker, triggers run as the owner for the service role), the service role, or a member
-- (MFA aside, as my_orgs shows blocked members their role) or API key of that org.
create or replace function private.may_see_org(p_org_id uuid) returns boolean
language sql stable security definer
set search_path = ''
as $$
  select coalesce((select auth.role()), 'service_role') = 'service_role'
      or exists (select 1 from private.member_org_ids() x where x = p_org_id)
$$;
revoke all on function private.may_see_org(uuid) from public;

create or replace function private.role_rank(p_org_id uuid, p_role text) returns int
language sql stable security definer
set search_path = ''
as $$
  select coalesce(
    (select b.rank from public.builtin_roles b where b.key = p_role),
    (select r.rank from public.org_roles r where r.org_id = p_org_id and r.key = p_role))
  where private.may_see_org(p_org_id)
$$;

create or replace function private.role_permissions(p_org_id uuid, p_role text) returns text[]
language sql stable security definer
set search_path = ''
as $$
  select case when private.may_see_org(p_org_id) then private.role_permissions_unchecked(p_org_id, p_role)
              else '{}'::text[] end
$$;

-- The plan only for those who may read the org's data: its MFA rule met (or its API key), or
-- the service role and SQL without claims. billing.entitled and billing.limit_of go through it,
-- so a blocked member learns nothing from them either (no plan: not entitled, limit 0).
create or replace function billing.current_plan(p_org_id uuid) returns text
language sql stable security definer
set search_path = ''
as $$
  select coalesce(
    (select s.plan_key from billing.subscriptions s
     where s.org_id = p_org_id and s.status in ('trialing', 'active', 'past_due') and s.plan_key is not null
     order by s.current_period_end desc nulls last limit 1),
    (select p.key from billing.plans p where p.is_default))
  where coalesce((select auth.role()), 'service_role') = 'service_role'
     or p_org_id in (select private.accessible_org_ids())
     or p_org_id in (select k.org_id from public.api_keys k
                     where k.id = private.api_key_id() and k.revoked_at is null
                       and (k.expires_at is null or k.expires_at > now()))
$$;
comment on function billing.current_plan(uuid) is 'The org''s plan key: its live (trialing, active, past_due) subscription''s plan, else the default plan. Null for callers who may not read the org''s data (not a member, or a member whose session does not meet the org''s MFA requirement).';
