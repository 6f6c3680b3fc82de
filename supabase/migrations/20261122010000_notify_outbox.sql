-- Events backbone, part 1: the outbox (notify.events), its catalog, per-consumer receipts,
-- the tenancy core's events, Realtime authorization, and the per-org activity feed.
-- Every domain event is written once, in the transaction that caused it; realtime,
-- notifications, webhooks and analytics all read from this one stream.

create schema if not exists notify;
grant usage on schema notify to authenticated, service_role;
comment on schema notify is 'Plinth events backbone: outbox, notifications, outbound webhooks, audit log.';

create table notify.event_types (
  type text primary key check (type ~ '^[a-z][a-z_]*(\.[a-z][a-z_]*)+$'),
  module text not null,
  description text not null,
  schema_version int not null default 1 check (schema_version > 0),
  sensitive boolean not null default false,
  created_at timestamptz not null default now()
);
comment on table notify.event_types is 'Catalog of domain event types. Each has a zod payload schema in functions/_shared/events/catalog.ts; tests check that the two lists match.';
comment on column notify.event_types.sensitive is 'Payload holds personal data (emails) or credential metadata: only members with members.manage read such events in the activity feed.';
comment on column notify.event_types.schema_version is 'Version of the payload shape; events record the version they were written with.';

insert into notify.event_types (type, module, description, sensitive) values
  ('org.created', 'tenancy', 'A team org was created', false),
  ('org.updated', 'tenancy', 'An org''s name, slug, settings or MFA requirement changed', false),
  ('member.invited', 'tenancy', 'Someone was invited to the org', true),
  ('member.joined', 'tenancy', 'A user joined the org', false),
  ('member.role_changed', 'tenancy', 'A member''s role changed', false),
  ('member.removed', 'tenancy', 'A member left or was removed', false),
  ('api_key.created', 'tenancy', 'An org API key was created', true),
  ('api_key.revoked', 'tenancy', 'An org API key was revoked', true);

create table notify.events (
  id uuid primary key default gen_random_uuid(),
  seq bigint generated always as identity,
  org_id uuid not null references public.orgs (id) on delete cascade,
  type text not null references notify.event_types (type),
  schema_version int not null,
  subject_kind text not null,
  subject_id text not null,
  actor_user_id uuid references auth.users (id) on delete set null,
  actor_api_key_id uuid references public.api_keys (id) on delete set null,
  payload jsonb not null default '{}' check (jsonb_typeof(payload) = 'object'),
  request jsonb,
  occurred_at timestamptz not null default now(),
  dispatched_at timestamptz,
  dispatch_attempts int not null default 0,
  next_dispatch_at timestamptz not null default now(),
  last_error text
);
create unique index events_seq_idx on notify.events (seq);
create index events_org_id_idx on notify.events (org_id, occurred_at desc);
create index events_pending_idx on notify.events (next_dispatch_at, seq) where dispatched_at is null;
create index events_actor_user_idx on notify.events (actor_user_id);
create index events_actor_api_key_idx on notify.events (actor_api_key_id);
create index events_type_idx on notify.events (type);
comment on table notify.events is 'The outbox: one row per domain event, written in the same transaction as the change. The worker dispatches each event to every consumer at least once; consumer_receipts keep each consumer from acting twice.';
comment on column notify.events.seq is 'Commit-independent order of writing; consumers see events of one org in this order.';
comment on column notify.events.subject_kind is 'What the event is about (org, member, invitation, api_key, …); subject_id identifies it.';
comment on column notify.events.request is 'Request id, IP and user agent when the change came through the api function.';
comment on column notify.events.dispatched_at is 'When every consumer had handled the event; null while any is pending.';

create table notify.consumer_receipts (
  consumer text not null,
  event_id uuid not null references notify.events (id) on delete cascade,
  handled_at timestamptz not null default now(),
  primary key (event_id, consumer)
);
comment on table notify.consumer_receipts is 'Which consumer (realtime, notifications, webhooks, …) has handled which event; written in the same transaction as the consumer''s effects.';

alter table notify.event_types enable row level security;
alter table notify.events enable row level security;
alter table notify.consumer_receipts enable row level security;
revoke all on notify.event_types, notify.events, notify.consumer_receipts from anon, authenticated;
grant all on notify.event_types, notify.events, notify.consumer_receipts to service_role;
grant select on notify.event_types to authenticated;
create policy "signed-in users read the event catalog" on notify.event_types
  for select to authenticated using (true);

-- ---------------------------------------------------------------------------
-- Emitting
-- ---------------------------------------------------------------------------

-- Request metadata the api function puts in `plinth.request` (id, ip, user_agent).
create or replace function private.request_meta() returns jsonb
language sql stable
set search_path = ''
as $$
  select nullif(current_setting('plinth.request', true), '')::jsonb
$$;

-- The one way to write an event. Modules call it from triggers and RPCs, never insert directly.
create or replace function private.emit_event(
  p_org_id uuid, p_type text, p_subject_kind text, p_subject_id text, p_payload jsonb default '{}')
returns uuid
language plpgsql security definer
set search_path = ''
as $$
declare
  v_version int;
  v_id uuid;
  v_uid uuid := auth.uid();
begin
  select t.schema_version into v_version from notify.event_types t where t.type = p_type;
  if v_version is null then
    raise exception 'unknown event type "%"', p_type using errcode = '22023';
  end if;
  insert into notify.events (org_id, type, schema_version, subject_kind, subject_id,
                             actor_user_id, actor_api_key_id, payload, request)
  values (p_org_id, p_type, v_version, p_subject_kind, p_subject_id,
          (select u.id from auth.users u where u.id = v_uid), private.api_key_id(),
          coalesce(p_payload, '{}'), private.request_meta())
  returning id into v_id;
  -- Wakes the worker's dispatcher; delivered only if this transaction commits.
  perform pg_notify('plinth_outbox', '');
  return v_id;
end
$$;
revoke all on function private.request_meta(), private.emit_event(uuid, text, text, text, jsonb) from public;
grant execute on function private.request_meta() to authenticated, service_role;
grant execute on function private.emit_event(uuid, text, text, text, jsonb) to service_role;

-- ---------------------------------------------------------------------------
-- The tenancy core's events (team orgs only: personal orgs are private by nature)
-- ---------------------------------------------------------------------------

create or replace function private.is_team_org(p_org_id uuid) returns boolean
language sql stable security definer
set search_path = ''
as $$
  select exists (select 1 from public.orgs o where o.id = p_org_id and o.kind = 'team')
$$;
revoke all on function private.is_team_org(uuid) from public;

create or replace function private.emit_org_events() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  if new.kind <> 'team' then
    return null;
  end if;
  if tg_op = 'INSERT' then
    perform private.emit_event(new.id, 'org.created', 'org', new.id::text,
      jsonb_build_object('name', new.name, 'slug', new.slug));
  elsif (new.name, new.slug, new.settings, new.require_mfa) is distinct from (old.name, old.slug, old.settings, old.require_mfa) then
    perform private.emit_event(new.id, 'org.updated', 'org', new.id::text,
      jsonb_build_object('name', new.name, 'slug', new.slug, 'require_mfa', new.require_mfa,
                         'changed', (select coalesce(jsonb_agg(k order by k), '[]') from jsonb_each(to_jsonb(new)) n(k, v)
                                     where k in ('name', 'slug', 'settings', 'require_mfa') and v is distinct from to_jsonb(old) -> k)));
  end if;
  return null;
end
$$;
create trigger orgs_emit_events after insert or update on public.orgs
  for each row execute function private.emit_org_events();

create or replace function private.emit_member_events() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  v_org uuid := coalesce(new.org_id, old.org_id);
begin
  -- Skips personal orgs, and orgs being deleted (their events go with them).
  if not private.is_team_org(v_org) then
    return null;
  end if;
  if tg_op = 'INSERT' then
    perform private.emit_event(v_org, 'member.joined', 'member', new.user_id::text,
      jsonb_build_object('user_id', new.user_id, 'role', new.role));
  elsif tg_op = 'UPDATE' and new.role is distinct from old.role then
    perform private.emit_event(v_org, 'member.role_changed', 'member', new.user_id::text,
      jsonb_build_object('user_id', new.user_id, 'old_role', old.role, 'new_role', new.role));
  elsif tg_op = 'DELETE' then
    perform private.emit_event(v_org, 'member.removed', 'member', old.user_id::text,
      jsonb_build_object('user_id', old.user_id, 'role', old.role));
  end if;
  return null;
end
$$;
create trigger org_members_emit_events after insert or update or delete on public.org_members
  for each row execute function private.emit_member_events();

create or replace function private.emit_invitation_events() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  perform private.emit_event(new.org_id, 'member.invited', 'invitation', new.id::text,
    jsonb_build_object('invitation_id', new.id, 'email', new.email, 'role', new.role, 'expires_at', new.expires_at));
  return null;
end
$$;
create trigger invitations_emit_events after insert on public.invitations
  for each row execute function private.emit_invitation_events();

create or replace function private.emit_api_key_events() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  if tg_op = 'INSERT' then
    perform private.emit_event(new.org_id, 'api_key.created', 'api_key', new.id::text,
      jsonb_build_object('api_key_id', new.id, 'name', new.name, 'prefix', new.prefix, 'scopes', to_jsonb(new.scopes)));
  elsif new.revoked_at is not null and old.revoked_at is null then
    perform private.emit_event(new.org_id, 'api_key.revoked', 'api_key', new.id::text,
      jsonb_build_object('api_key_id', new.id, 'name', new.name, 'prefix', new.prefix));
  end if;
  return null;
end
$$;
create trigger api_keys_emit_events after insert or update of revoked_at on public.api_keys
  for each row execute function private.emit_api_key_events();

revoke all on function private.emit_org_events(), private.emit_member_events(),
  private.emit_invitation_events(), private.emit_api_key_events() from public;

-- ---------------------------------------------------------------------------
-- Realtime: who may receive on which private channel (Broadcast from the database)
-- ---------------------------------------------------------------------------

-- The org id in an `org:<uuid>` topic, or null for anything else.
create or replace function private.topic_org_id(p_topic text) returns uuid
language sql immutable
set search_path = ''
as $$
  select case when p_topic ~ '^org:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
              then substr(p_topic, 5)::uuid end
$$;
revoke all on function private.topic_org_id(text) from public;
grant execute on function private.topic_org_id(text) to authenticated;

create policy "users receive their own and their orgs' broadcasts" on realtime.messages
  for select to authenticated
  using (
    extension = 'broadcast'
    and (
      (select realtime.topic()) = 'user:' || (select auth.uid())::text
      or private.topic_org_id((select realtime.topic())) in (select private.accessible_org_ids())
    )
  );

-- ---------------------------------------------------------------------------
-- Activity feed: the org's events, as members see them
-- ---------------------------------------------------------------------------

create view notify.activity with (security_invoker = true) as
select e.id, e.org_id, e.type, e.subject_kind, e.subject_id, e.actor_user_id, e.actor_api_key_id,
       e.payload, e.occurred_at
from notify.events e;
comment on view notify.activity is 'Per-org activity feed derived from the outbox: members read their orgs'' events (newest first via occurred_at).';

create policy "members read their orgs' events; sensitive ones need members.manage" on notify.events
  for select to authenticated
  using (
    org_id in (select private.org_ids_with_permission('members.manage'))
    or (org_id in (select private.accessible_org_ids())
        and type in (select t.type from notify.event_types t where not t.sensitive))
  );
grant select (id, org_id, type, subject_kind, subject_id, actor_user_id, actor_api_key_id, payload, occurred_at)
  on notify.events to authenticated;
grant select on notify.activity to authenticated;
