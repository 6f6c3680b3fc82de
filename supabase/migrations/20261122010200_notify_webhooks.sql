-- Outbound webhooks (Standard Webhooks): endpoints an org registers, their signing secrets,
-- one message per endpoint and event (fanned out from the outbox by the worker's "webhooks"
-- consumer), and every delivery attempt. Clients read through RLS (webhooks.manage) and
-- write through the RPCs below; the worker delivers as service_role.

insert into notify.event_types (type, module, description, sensitive) values
  ('webhook.test', 'webhooks', 'A test event sent to one webhook endpoint on request', false),
  -- Sensitive: the URL may carry a secret (chat-app hook URLs do).
  ('webhook.endpoint_disabled', 'webhooks', 'A webhook endpoint was disabled automatically (410 Gone, or failing for 5 days)', true);

-- ---------------------------------------------------------------------------
-- Tables
-- ---------------------------------------------------------------------------

create table notify.webhook_endpoints (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null references public.orgs (id) on delete cascade,
  url text not null check (url ~ '^https?://' and length(url) <= 2048),
  description text not null default '' check (length(description) <= 500),
  event_types text[] not null default '{}',
  status text not null default 'active' check (status in ('active', 'disabled')),
  disabled_reason text,
  disabled_at timestamptz,
  failing_since timestamptz,
  created_by uuid references auth.users (id) on delete set null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create index webhook_endpoints_org_id_idx on notify.webhook_endpoints (org_id, created_at);
create index webhook_endpoints_created_by_idx on notify.webhook_endpoints (created_by);
create trigger webhook_endpoints_updated_at before update on notify.webhook_endpoints
  for each row execute function private.set_updated_at();
comment on table notify.webhook_endpoints is 'Outbound webhook endpoints of an org (Standard Webhooks). Each receives the org''s events that match event_types, signed with its secrets. Managed through create/update/delete_webhook_endpoint; needs webhooks.manage.';
comment on column notify.webhook_endpoints.event_types is 'Event types this endpoint receives (keys of notify.event_types); empty means every non-sensitive type. Sensitive types must be named, which needs members.manage.';
comment on column notify.webhook_endpoints.status is 'active endpoints receive events; disabled ones receive nothing and their pending messages fail.';
comment on column notify.webhook_endpoints.disabled_reason is 'Why the endpoint was disabled: by a user, a 410 Gone answer, or 5 days of continuous failure.';
comment on column notify.webhook_endpoints.failing_since is 'Start of the current run of failed attempts (null after any success). A run longer than 5 days disables the endpoint.';

create table notify.webhook_secrets (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null references public.orgs (id) on delete cascade,
  endpoint_id uuid not null references notify.webhook_endpoints (id) on delete cascade,
  secret text not null check (secret ~ '^whsec_[A-Za-z0-9+/]+={0,2}$'),
  created_at timestamptz not null default now(),
  expires_at timestamptz
);
create index webhook_secrets_org_id_idx on notify.webhook_secrets (org_id);
create index webhook_secrets_endpoint_idx on notify.webhook_secrets (endpoint_id, created_at desc);
comment on table notify.webhook_secrets is 'Signing secrets of webhook endpoints. Every unexpired secret signs each delivery, so a rotated-out secret keeps verifying during the overlap. Clients never read the secret column: it is returned once by create_webhook_endpoint and rotate_webhook_secret.';
comment on column notify.webhook_secrets.secret is 'whsec_ + base64 of 32 random bytes (Standard Webhooks format). Not selectable by clients.';
comment on column notify.webhook_secrets.expires_at is 'When this secret stops signing (set by rotation to now + overlap); null while it is current.';

create table notify.webhook_messages (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null references public.orgs (id) on delete cascade,
  endpoint_id uuid not null references notify.webhook_endpoints (id) on delete cascade,
  event_id uuid not null references notify.events (id) on delete cascade,
  status text not null default 'pending' check (status in ('pending', 'delivering', 'succeeded', 'failed')),
  attempt_count int not null default 0 check (attempt_count >= 0),
  next_attempt_at timestamptz not null default now(),
  locked_until timestamptz,
  last_attempt_at timestamptz,
  last_status_code int,
  last_error text,
  delivered_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (endpoint_id, event_id)
);
create index webhook_messages_org_id_idx on notify.webhook_messages (org_id, created_at desc);
create index webhook_messages_event_idx on notify.webhook_messages (event_id);
create index webhook_messages_due_idx on notify.webhook_messages (next_attempt_at) where status in ('pending', 'delivering');
create trigger webhook_messages_updated_at before update on notify.webhook_messages
  for each row execute function private.set_updated_at();
comment on table notify.webhook_messages is 'One delivery of one event to one endpoint. Its id is the webhook-id header, the same on every retry and replay, so receivers can deduplicate.';
comment on column notify.webhook_messages.status is 'pending: waiting for next_attempt_at; delivering: an attempt is in flight (until locked_until); succeeded: a 2xx came back; failed: retries exhausted, endpoint disabled, or gave up.';
comment on column notify.webhook_messages.attempt_count is 'Attempts in the current delivery cycle; replay and recover start a new cycle. Every attempt ever made is in webhook_attempts.';
comment on column notify.webhook_messages.next_attempt_at is 'When the next attempt is due (retry schedule with jitter, or Retry-After).';
comment on column notify.webhook_messages.locked_until is 'Lease of the in-flight attempt. A worker that dies mid-delivery leaves the message delivering; after the lease it is delivered again with the same webhook-id.';

create table notify.webhook_attempts (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null references public.orgs (id) on delete cascade,
  message_id uuid not null references notify.webhook_messages (id) on delete cascade,
  endpoint_id uuid not null references notify.webhook_endpoints (id) on delete cascade,
  attempt int not null check (attempt > 0),
  attempted_at timestamptz not null default now(),
  status_code int,
  latency_ms int,
  response_snippet text check (length(response_snippet) <= 500),
  error text
);
create index webhook_attempts_org_id_idx on notify.webhook_attempts (org_id, attempted_at desc);
create index webhook_attempts_message_idx on notify.webhook_attempts (message_id, attempted_at);
create index webhook_attempts_endpoint_idx on notify.webhook_attempts (endpoint_id, attempted_at desc);
comment on table notify.webhook_attempts is 'Every delivery attempt of a webhook message, for debugging: status code, latency and the start of the response.';
comment on column notify.webhook_attempts.attempt is 'Number of the attempt within its message''s delivery cycle (1 = first try).';
comment on column notify.webhook_attempts.status_code is 'HTTP status received; null when no response came (refused address, timeout, connection error: see error).';
comment on column notify.webhook_attempts.response_snippet is 'First 500 characters of the response body.';

-- ---------------------------------------------------------------------------
-- Access: read through RLS with webhooks.manage, write only through the RPCs
-- ---------------------------------------------------------------------------

alter table notify.webhook_endpoints enable row level security;
alter table notify.webhook_secrets enable row level security;
alter table notify.webhook_messages enable row level security;
alter table notify.webhook_attempts enable row level security;

revoke all on notify.webhook_endpoints, notify.webhook_secrets, notify.webhook_messages, notify.webhook_attempts
  from anon, authenticated;
grant all on notify.webhook_endpoints, notify.webhook_secrets, notify.webhook_messages, notify.webhook_attempts
  to service_role;
grant select on notify.webhook_endpoints, notify.webhook_messages, notify.webhook_attempts to authenticated;
-- Every column but the secret itself.
grant select (id, org_id, endpoint_id, created_at, expires_at) on notify.webhook_secrets to authenticated;

create policy "webhook managers read their org's endpoints" on notify.webhook_endpoints
  for select to authenticated using (org_id in (select private.org_ids_with_permission('webhooks.manage')));
create policy "webhook managers read their org's secret metadata" on notify.webhook_secrets
  for select to authenticated using (org_id in (select private.org_ids_with_permission('webhooks.manage')));
create policy "webhook managers read their org's messages" on notify.webhook_messages
  for select to authenticated using (org_id in (select private.org_ids_with_permission('webhooks.manage')));
create policy "webhook managers read their org's attempts" on notify.webhook_attempts
  for select to authenticated using (org_id in (select private.org_ids_with_permission('webhooks.manage')));

create trigger webhook_endpoints_audit after insert or update or delete on notify.webhook_endpoints
  for each row execute function private.audit_row();
create trigger webhook_secrets_audit after insert or update or delete on notify.webhook_secrets
  for each row execute function private.audit_row('secret');

-- ---------------------------------------------------------------------------
-- Helpers
-- ---------------------------------------------------------------------------

-- A Standard Webhooks secret: whsec_ + base64 of 32 random bytes.
create or replace function private.new_webhook_secret() returns text
language sql volatile
set search_path = ''
as $$
  select 'whsec_' || encode(extensions.gen_random_bytes(32), 'base64')
$$;

-- Raises 22023 on a bad url, description or event-type filter.
create or replace function private.check_webhook_endpoint_input(p_url text, p_description text, p_event_types text[])
returns void
language plpgsql stable security definer
set search_path = ''
as $$
declare
  v_unknown text[];
begin
  if p_url is not null and (p_url !~ '^https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?(/[^\s]*)?$|^https?://\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?(/[^\s]*)?$'
                            or length(p_url) > 2048) then
    raise exception 'url must be an absolute http(s) URL without credentials, at most 2048 characters' using errcode = '22023';
  end if;
  if length(p_description) > 500 then
    raise exception 'description must be at most 500 characters' using errcode = '22023';
  end if;
  select array_agg(t order by t) into v_unknown
  from unnest(coalesce(p_event_types, '{}')) t
  where t is null or t not in (select et.type from notify.event_types et);
  if v_unknown is not null then
    raise exception 'unknown event types: %', array_to_string(v_unknown, ', ', 'null') using errcode = '22023';
  end if;
end
$$;

-- Sensitive event types (invitee emails, key metadata) reach an endpoint only when named in its
-- filter, and naming them takes members.manage: the activity feed's own rule for reading them.
create or replace function private.assert_may_subscribe(p_org_id uuid, p_event_types text[]) returns void
language plpgsql stable security definer
set search_path = ''
as $$
begin
  if exists (select 1 from notify.event_types t where t.sensitive and t.type = any (coalesce(p_event_types, '{}')))
     and not private.has_permission(p_org_id, 'members.manage') then
    raise exception 'subscribing to sensitive event types needs members.manage' using errcode = '42501';
  end if;
end
$$;
revoke all on function private.assert_may_subscribe(uuid, text[]) from public;

-- The endpoint's org, after checking the caller may manage its webhooks. Endpoints of orgs the
-- caller is not in do not exist for them (PT404); members without webhooks.manage get 42501.
create or replace function private.manageable_webhook_endpoint(p_endpoint_id uuid) returns notify.webhook_endpoints
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
  return v_endpoint;
end
$$;

-- Disables an endpoint on the worker's behalf (410 Gone, or 5 days of failure): its waiting
-- messages fail, and the org hears about it through the outbox. Returns false if already disabled.
create or replace function private.disable_webhook_endpoint(p_endpoint_id uuid, p_reason text) returns boolean
language plpgsql security definer
set search_path = ''
as $$
declare
  v_endpoint notify.webhook_endpoints;
begin
  update notify.webhook_endpoints
  set status = 'disabled', disabled_reason = p_reason, disabled_at = now()
  where id = p_endpoint_id and status = 'active'
  returning * into v_endpoint;
  if v_endpoint.id is null then
    return false;
  end if;
  update notify.webhook_messages
  set status = 'failed', locked_until = null, last_error = 'endpoint disabled: ' || p_reason
  where endpoint_id = p_endpoint_id and status in ('pending', 'delivering');
  perform private.emit_event(v_endpoint.org_id, 'webhook.endpoint_disabled', 'webhook_endpoint', v_endpoint.id::text,
    jsonb_build_object('endpoint_id', v_endpoint.id, 'url', v_endpoint.url, 'reason', p_reason,
                       'failing_since', v_endpoint.failing_since));
  return true;
end
$$;

revoke all on function private.new_webhook_secret(), private.check_webhook_endpoint_input(text, text, text[]),
  private.manageable_webhook_endpoint(uuid), private.disable_webhook_endpoint(uuid, text) from public;
grant execute on function private.disable_webhook_endpoint(uuid, text) to service_role;

-- ---------------------------------------------------------------------------
-- RPCs
-- ---------------------------------------------------------------------------

create or replace function public.create_webhook_endpoint(
  p_org_id uuid, p_url text, p_description text default '', p_event_types text[] default '{}')
returns table (endpoint_id uuid, secret text)
language plpgsql security definer
set search_path = ''
as $$
declare
  v_id uuid;
  v_secret text := private.new_webhook_secret();
begin
  perform private.require_permission(p_org_id, 'webhooks.manage');
  if p_url is null then
    raise exception 'url is required' using errcode = '22023';
  end if;
  perform private.check_webhook_endpoint_input(btrim(p_url), coalesce(p_description, ''), p_event_types);
  perform private.assert_may_subscribe(p_org_id, p_event_types);
  -- The plan's limit (billing, a later migration of this release; resolved at call time).
  perform private.lock_org(p_org_id);
  if (select count(*) from notify.webhook_endpoints e where e.org_id = p_org_id)
     >= coalesce(billing.limit_of(p_org_id, 'webhook_endpoints'), 'infinity'::float8) then
    raise exception 'your plan includes % webhook endpoints and all are in use; upgrade to add more',
      billing.limit_of(p_org_id, 'webhook_endpoints') using errcode = 'PT402';
  end if;
  insert into notify.webhook_endpoints (org_id, url, description, event_types, created_by)
  values (p_org_id, btrim(p_url), coalesce(p_description, ''),
          array(select distinct unnest(coalesce(p_event_types, '{}')) order by 1), (select auth.uid()))
  returning id into v_id;
  insert into notify.webhook_secrets (org_id, endpoint_id, secret) values (p_org_id, v_id, v_secret);
  return query select v_id, v_secret;
end
$$;
comment on function public.create_webhook_endpoint(uuid, text, text, text[]) is 'Registers a webhook endpoint and returns its signing secret, once. Empty p_event_types means every non-sensitive event type; sensitive ones must be named, which needs members.manage. Needs webhooks.manage.';

create or replace function public.update_webhook_endpoint(
  p_endpoint_id uuid, p_url text default null, p_description text default null,
  p_event_types text[] default null, p_status text default null)
returns setof notify.webhook_endpoints
language plpgsql security definer
set search_path = ''
as $$
begin
  perform private.assert_may_subscribe((private.manageable_webhook_endpoint(p_endpoint_id)).org_id, p_event_types);
  if p_status is not null and p_status not in ('active', 'disabled') then
    raise exception 'status must be active or disabled' using errcode = '22023';
  end if;
  perform private.check_webhook_endpoint_input(btrim(p_url), p_description, p_event_types);
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
comment on function public.update_webhook_endpoint(uuid, text, text, text[], text) is 'Changes an endpoint''s url, description, event-type filter or status (active/disabled); null leaves a field as it is. Needs webhooks.manage.';

create or replace function public.delete_webhook_endpoint(p_endpoint_id uuid)
returns void
language plpgsql security definer
set search_path = ''
as $$
begin
  perform private.manageable_webhook_endpoint(p_endpoint_id);
  delete from notify.webhook_endpoints where id = p_endpoint_id;
end
$$;
comment on function public.delete_webhook_endpoint(uuid) is 'Deletes an endpoint with its secrets, messages and attempts. Needs webhooks.manage.';

create or replace function public.rotate_webhook_secret(p_endpoint_id uuid, p_overlap interval default interval '24 hours')
returns table (secret text, previous_expires_at timestamptz)
language plpgsql security definer
set search_path = ''
as $$
declare
  v_endpoint notify.webhook_endpoints := private.manageable_webhook_endpoint(p_endpoint_id);
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
comment on function public.rotate_webhook_secret(uuid, interval) is 'Issues a new signing secret and returns it, once. Older secrets keep signing for p_overlap (default 24 hours, at most 7 days) so receivers can switch without dropping deliveries. Needs webhooks.manage.';

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
  v_endpoint := private.manageable_webhook_endpoint(v_endpoint_id);
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
comment on function public.replay_webhook_message(uuid) is 'Delivers a message again, with the same webhook-id, starting a new retry cycle. The api route queues it at once; called directly, the worker''s sweep picks it up within a minute. Needs webhooks.manage.';

create or replace function public.recover_webhook_messages(p_org_id uuid, p_since timestamptz, p_endpoint_id uuid default null)
returns setof uuid
language plpgsql security definer
set search_path = ''
as $$
begin
  perform private.require_permission(p_org_id, 'webhooks.manage');
  if p_since is null or p_since > now() then
    raise exception 'since must be a time in the past' using errcode = '22023';
  end if;
  -- At most 1,000 per call (oldest first), so one request stays small; call again for the rest.
  return query
  update notify.webhook_messages m
  set status = 'pending', attempt_count = 0, next_attempt_at = now(), locked_until = null
  where m.id in (
    select x.id from notify.webhook_messages x
    join notify.webhook_endpoints e on e.id = x.endpoint_id and e.status = 'active'
    where x.org_id = p_org_id and x.status = 'failed' and x.created_at >= p_since
      and (p_endpoint_id is null or x.endpoint_id = p_endpoint_id)
    order by x.created_at
    limit 1000)
  returning m.id;
end
$$;
comment on function public.recover_webhook_messages(uuid, timestamptz, uuid) is 'Re-queues failed messages of the org (optionally of one endpoint) created since p_since, on active endpoints, oldest first and at most 1,000 per call; returns their ids. Needs webhooks.manage.';

create or replace function public.send_test_webhook(p_endpoint_id uuid)
returns uuid
language plpgsql security definer
set search_path = ''
as $$
declare
  v_endpoint notify.webhook_endpoints := private.manageable_webhook_endpoint(p_endpoint_id);
begin
  if v_endpoint.status <> 'active' then
    raise exception 'the endpoint is disabled; re-enable it before testing' using errcode = '22023';
  end if;
  -- Travels the real path: outbox, fan-out (to this endpoint only), signed delivery.
  return private.emit_event(v_endpoint.org_id, 'webhook.test', 'webhook_endpoint', v_endpoint.id::text,
    jsonb_build_object('endpoint_id', v_endpoint.id, 'message', 'This is a test event from Plinth.'));
end
$$;
comment on function public.send_test_webhook(uuid) is 'Emits a webhook.test event delivered to this endpoint only (whatever its filter); returns the event id. Needs webhooks.manage.';

revoke all on function
  public.create_webhook_endpoint(uuid, text, text, text[]), public.update_webhook_endpoint(uuid, text, text, text[], text),
  public.delete_webhook_endpoint(uuid), public.rotate_webhook_secret(uuid, interval), public.replay_webhook_message(uuid),
  public.recover_webhook_messages(uuid, timestamptz, uuid), public.send_test_webhook(uuid)
  from public, anon;
grant execute on function
  public.create_webhook_endpoint(uuid, text, text, text[]), public.update_webhook_endpoint(uuid, text, text, text[], text),
  public.delete_webhook_endpoint(uuid), public.rotate_webhook_secret(uuid, interval), public.replay_webhook_message(uuid),
  public.recover_webhook_messages(uuid, timestamptz, uuid), public.send_test_webhook(uuid)
  to authenticated, service_role;
