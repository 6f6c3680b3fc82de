-- Notifications: per-user rows fanned out from the outbox by the worker's "notifications"
-- consumer, per-type rules (who is told, what it says, default channels), per-user
-- preferences per type and channel, the inbox RPCs, and the daily-digest claim.

-- ---------------------------------------------------------------------------
-- Rules: which event types notify whom, with what text, on which channels by default
-- ---------------------------------------------------------------------------

create table notify.notification_rules (
  type text primary key references notify.event_types (type) on delete cascade,
  recipients text not null check (recipients in ('org_admins', 'org_owners', 'subject_user', 'actor')),
  title_template text not null check (char_length(title_template) between 1 and 200),
  body_template text not null check (char_length(body_template) between 1 and 1000),
  link_template text check (char_length(link_template) <= 500),
  default_channels text[] not null default '{in_app}'
    check (default_channels <@ array['in_app', 'email', 'email_digest']),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
comment on table notify.notification_rules is 'Which event types notify whom. Events whose type has no rule notify nobody. Templates fill {{placeholders}} from the event payload plus org_name, org_id, actor_name and user_name.';
comment on column notify.notification_rules.recipients is 'org_admins: members holding members.manage; org_owners: owners; subject_user: payload.user_id; actor: whoever caused the event. The actor is never told about their own action unless recipients = actor.';
comment on column notify.notification_rules.link_template is 'App-relative path the notification opens (joined with the app URL in emails).';
comment on column notify.notification_rules.default_channels is 'Channels on for a user who has set no preference for this type: in_app, email (one email per notification), email_digest (the daily 08:00 digest).';
create trigger notification_rules_updated_at before update on notify.notification_rules
  for each row execute function private.set_updated_at();

insert into notify.notification_rules (type, recipients, title_template, body_template, link_template, default_channels) values
  ('member.joined', 'org_admins', '{{user_name}} joined {{org_name}}',
   '{{user_name}} joined {{org_name}} as {{role}}.', '/orgs/{{org_id}}/members', '{in_app,email_digest}'),
  ('member.role_changed', 'subject_user', 'Your role in {{org_name}} changed',
   '{{actor_name}} changed your role in {{org_name}} from {{old_role}} to {{new_role}}.', '/orgs/{{org_id}}', '{in_app,email}'),
  ('member.removed', 'subject_user', 'You were removed from {{org_name}}',
   '{{actor_name}} removed you from {{org_name}}.', null, '{in_app,email}'),
  ('api_key.created', 'org_admins', 'New API key in {{org_name}}',
   '{{actor_name}} created the API key "{{name}}" ({{prefix}}…) in {{org_name}}.', '/orgs/{{org_id}}/api-keys', '{in_app,email}');

-- The webhooks module adds this event type in its own migration; the rule follows it when present.
insert into notify.notification_rules (type, recipients, title_template, body_template, link_template, default_channels)
select 'webhook.endpoint_disabled', 'org_admins', 'A webhook endpoint was disabled in {{org_name}}',
       'Deliveries to {{url}} kept failing, so the endpoint was disabled. Fix it, then re-enable it.',
       '/orgs/{{org_id}}/webhooks', '{in_app,email}'
where exists (select 1 from notify.event_types t where t.type = 'webhook.endpoint_disabled');

-- ---------------------------------------------------------------------------
-- Preferences
-- ---------------------------------------------------------------------------

create table notify.notification_preferences (
  user_id uuid not null references public.profiles (id) on delete cascade,
  type text not null references notify.notification_rules (type) on delete cascade,
  channel text not null check (channel in ('in_app', 'email', 'email_digest')),
  enabled boolean not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (user_id, type, channel)
);
create index notification_preferences_type_idx on notify.notification_preferences (type);
comment on table notify.notification_preferences is 'A user''s own choice per notification type and channel. No row means the rule''s default_channels decide. Users read and write only their own rows.';
create trigger notification_preferences_updated_at before update on notify.notification_preferences
  for each row execute function private.set_updated_at();

-- Effective setting: the user's row, else the rule's default. Used by fan-out and digest.
create or replace function private.notification_channel_enabled(p_user_id uuid, p_type text, p_channel text)
returns boolean
language sql stable security definer
set search_path = ''
as $$
  select coalesce(
    (select p.enabled from notify.notification_preferences p
     where p.user_id = p_user_id and p.type = p_type and p.channel = p_channel),
    (select p_channel = any (r.default_channels) from notify.notification_rules r where r.type = p_type),
    false)
$$;
revoke all on function private.notification_channel_enabled(uuid, text, text) from public;

-- ---------------------------------------------------------------------------
-- Notifications
-- ---------------------------------------------------------------------------

create table notify.notifications (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null references public.orgs (id) on delete cascade,
  user_id uuid not null references public.profiles (id) on delete cascade,
  event_id uuid references notify.events (id) on delete set null,
  type text not null references notify.event_types (type),
  title text not null,
  body text not null,
  link text,
  data jsonb not null default '{}' check (jsonb_typeof(data) = 'object'),
  read_at timestamptz,
  archived_at timestamptz,
  emailed_at timestamptz,
  digested_at timestamptz,
  created_at timestamptz not null default now(),
  constraint notifications_event_user_key unique (event_id, user_id)
);
create index notifications_org_id_idx on notify.notifications (org_id, created_at desc);
create index notifications_user_idx on notify.notifications (user_id, created_at desc);
-- Serves unread_count() as an index-only scan: only unread, unarchived rows are in it.
create index notifications_unread_idx on notify.notifications (user_id) where read_at is null and archived_at is null;
-- Serves the hourly digest: rows not yet mailed singly nor in a digest.
create index notifications_undigested_idx on notify.notifications (user_id, created_at)
  where digested_at is null and emailed_at is null;
create index notifications_type_idx on notify.notifications (type);
comment on table notify.notifications is 'One row per recipient of an event (the inbox). Written by the worker''s notifications consumer; users read their own and mark them read or archived (RPCs, or the two columns directly).';
comment on column notify.notifications.org_id is 'The org the event happened in. The recipient may since have left it and still reads the row.';
comment on column notify.notifications.event_id is 'The outbox event it came from; unique with user_id, so a re-dispatched event notifies nobody twice.';
comment on column notify.notifications.data is 'The event payload, for clients that render their own text.';
comment on column notify.notifications.link is 'App-relative path the notification opens.';
comment on column notify.notifications.archived_at is 'Hidden from the inbox. Rows for users with the in_app channel off are written already archived (they exist for email bookkeeping).';
comment on column notify.notifications.emailed_at is 'When its single email was queued (email channel on at fan-out).';
comment on column notify.notifications.digested_at is 'When it was put in a daily digest email; set in the same transaction that queues the digest.';

-- ---------------------------------------------------------------------------
-- RLS and grants
-- ---------------------------------------------------------------------------

alter table notify.notification_rules enable row level security;
alter table notify.notification_preferences enable row level security;
alter table notify.notifications enable row level security;
revoke all on notify.notification_rules, notify.notification_preferences, notify.notifications from anon, authenticated;
grant all on notify.notification_rules, notify.notification_preferences, notify.notifications to service_role;

grant select on notify.notification_rules to authenticated;
create policy "signed-in users read the notification rules" on notify.notification_rules
  for select to authenticated using (true);

grant select, insert, delete on notify.notification_preferences to authenticated;
grant update (enabled) on notify.notification_preferences to authenticated;
create policy "users read their own preferences" on notify.notification_preferences
  for select to authenticated using (user_id = (select auth.uid()));
create policy "users add their own preferences" on notify.notification_preferences
  for insert to authenticated with check (user_id = (select auth.uid()));
create policy "users change their own preferences" on notify.notification_preferences
  for update to authenticated using (user_id = (select auth.uid())) with check (user_id = (select auth.uid()));
create policy "users remove their own preferences" on notify.notification_preferences
  for delete to authenticated using (user_id = (select auth.uid()));

-- Clients never write notifications; they only flip read_at and archived_at on their own.
grant select on notify.notifications to authenticated;
grant update (read_at, archived_at) on notify.notifications to authenticated;
create policy "users read their own notifications" on notify.notifications
  for select to authenticated using (user_id = (select auth.uid()));
create policy "users mark their own notifications" on notify.notifications
  for update to authenticated using (user_id = (select auth.uid())) with check (user_id = (select auth.uid()));

-- Every rule × channel with the caller's effective setting: what a settings screen shows.
create view notify.notification_settings with (security_invoker = true) as
select r.type, c.channel,
       coalesce(p.enabled, c.channel = any (r.default_channels)) as enabled,
       p.enabled is null as is_default
from notify.notification_rules r
cross join unnest(array['in_app', 'email', 'email_digest']) as c (channel)
left join notify.notification_preferences p
  on p.type = r.type and p.channel = c.channel and p.user_id = (select auth.uid());
comment on view notify.notification_settings is 'The signed-in user''s effective notification settings: every type × channel, their own choice or the rule''s default (is_default).';
grant select on notify.notification_settings to authenticated;

-- ---------------------------------------------------------------------------
-- RPCs for clients
-- ---------------------------------------------------------------------------

create or replace function private.require_user() returns uuid
language plpgsql stable
set search_path = ''
as $$
declare
  v_uid uuid := (select auth.uid());
begin
  if v_uid is null or private.api_key_id() is not null then
    raise exception 'sign in as a user to do this' using errcode = '42501';
  end if;
  return v_uid;
end
$$;
revoke all on function private.require_user() from public;
grant execute on function private.require_user() to authenticated;

create or replace function public.mark_read(p_ids uuid[])
returns integer
language plpgsql security definer
set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_wanted int := (select count(distinct x) from unnest(p_ids) x where x is not null);
  v_mine int;
  v_marked int;
begin
  if p_ids is null or v_wanted = 0 or v_wanted > 1000 then
    raise exception 'p_ids must list 1 to 1000 notification ids' using errcode = '22023';
  end if;
  -- All or nothing: an id that is not the caller's (or does not exist) refuses the whole call.
  select count(*) into v_mine from notify.notifications n where n.id = any (p_ids) and n.user_id = v_uid;
  if v_mine <> v_wanted then
    raise exception '% of the notifications were not found', v_wanted - v_mine using errcode = 'PT404';
  end if;
  update notify.notifications n set read_at = now()
  where n.id = any (p_ids) and n.user_id = v_uid and n.read_at is null;
  get diagnostics v_marked = row_count;
  return v_marked;
end
$$;
comment on function public.mark_read(uuid[]) is 'Marks the caller''s notifications read; returns how many changed. Any id that is not the caller''s refuses the whole call (PT404).';

create or replace function public.mark_all_read(p_org_id uuid default null)
returns integer
language plpgsql security definer
set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_marked int;
begin
  update notify.notifications n set read_at = now()
  where n.user_id = v_uid and n.read_at is null and n.archived_at is null
    and (p_org_id is null or n.org_id = p_org_id);
  get diagnostics v_marked = row_count;
  return v_marked;
end
$$;
comment on function public.mark_all_read(uuid) is 'Marks all the caller''s unread notifications read, or only those from one org; returns how many changed.';

create or replace function public.unread_count()
returns bigint
language sql stable security definer
set search_path = ''
as $$
  -- Index-only scan on notifications_unread_idx (partial: unread and unarchived), so the
  -- cost grows with the caller's unread rows only. Cheap enough to call on every page load.
  select count(*) from notify.notifications n
  where n.user_id = (select private.require_user()) and n.read_at is null and n.archived_at is null
$$;
comment on function public.unread_count() is 'The caller''s unread, unarchived notifications. An index-only scan on a partial index: cheap enough for every page load.';

-- Shared by the RPC (as the caller) and the unsubscribe link (as the worker/api, for the token's user).
-- A null p_type means every type, which is what a digest's unsubscribe link turns off.
create or replace function private.set_notification_preference_for(p_user_id uuid, p_type text, p_channel text, p_enabled boolean)
returns void
language plpgsql security definer
set search_path = ''
as $$
begin
  if p_channel is null or p_channel not in ('in_app', 'email', 'email_digest') then
    raise exception 'unknown channel "%"; use in_app, email or email_digest', p_channel using errcode = '22023';
  end if;
  if p_enabled is null then
    raise exception 'p_enabled must be true or false' using errcode = '22023';
  end if;
  if p_type is not null and not exists (select 1 from notify.notification_rules r where r.type = p_type) then
    raise exception 'unknown notification type "%"', p_type using errcode = '22023';
  end if;
  insert into notify.notification_preferences (user_id, type, channel, enabled)
  select p_user_id, r.type, p_channel, p_enabled
  from notify.notification_rules r
  where (p_type is null or r.type = p_type)
    and exists (select 1 from public.profiles p where p.id = p_user_id) -- a deleted user has nothing to change
  on conflict (user_id, type, channel) do update set enabled = excluded.enabled;
end
$$;
revoke all on function private.set_notification_preference_for(uuid, text, text, boolean) from public;
grant execute on function private.set_notification_preference_for(uuid, text, text, boolean) to service_role;

create or replace function public.set_notification_preference(p_type text, p_channel text, p_enabled boolean)
returns void
language plpgsql security definer
set search_path = ''
as $$
begin
  if p_type is null then
    raise exception 'unknown notification type "%"', p_type using errcode = '22023';
  end if;
  perform private.set_notification_preference_for(private.require_user(), p_type, p_channel, p_enabled);
end
$$;
comment on function public.set_notification_preference(text, text, boolean) is 'Turns one channel (in_app, email, email_digest) of one notification type on or off for the caller. Unknown type or channel: 22023.';

revoke all on function public.mark_read(uuid[]), public.mark_all_read(uuid), public.unread_count(),
  public.set_notification_preference(text, text, boolean) from public, anon;
grant execute on function public.mark_read(uuid[]), public.mark_all_read(uuid), public.unread_count(),
  public.set_notification_preference(text, text, boolean) to authenticated;

-- ---------------------------------------------------------------------------
-- Fan-out and digest (the worker calls these as service_role)
-- ---------------------------------------------------------------------------

-- Fills {{key}} from a JSON object's top-level values; unknown placeholders become empty.
create or replace function private.render_template(p_template text, p_ctx jsonb) returns text
language plpgsql immutable
set search_path = ''
as $$
declare
  v_out text := p_template;
  v_key text;
  v_val text;
begin
  if v_out is null then
    return null;
  end if;
  for v_key, v_val in select key, value from jsonb_each_text(p_ctx) loop
    v_out := replace(v_out, '{{' || v_key || '}}', coalesce(v_val, ''));
  end loop;
  return regexp_replace(v_out, '\{\{[a-z_]+\}\}', '', 'g');
end
$$;
revoke all on function private.render_template(text, jsonb) from public;

-- Writes one event's notifications: recipients by its rule, minus the actor, minus users with
-- every channel off; broadcasts each in-app one on user:<id>. Returns only rows written by
-- this call (unique (event_id, user_id) makes a second call a no-op), with whether to email.
create or replace function private.fan_out_notifications(p_event_id uuid)
returns table (notification_id uuid, user_id uuid, email text, type text, title text, body text, link text,
               org_name text, send_email boolean)
language plpgsql security definer
set search_path = ''
as $$
#variable_conflict use_column
declare
  v_ids uuid[];
begin
  with ev as (
    select e.* from notify.events e where e.id = p_event_id
  ), rule as (
    select r.* from notify.notification_rules r join ev on r.type = ev.type
  ), candidates as (
    -- Role permissions joined inline (built-in or custom), not one function call per member.
    select m.user_id from ev, rule, public.org_members m
    left join public.builtin_roles b on b.key = m.role
    left join public.org_roles cr on cr.org_id = m.org_id and cr.key = m.role
    where rule.recipients = 'org_admins' and m.org_id = ev.org_id
      and 'members.manage' = any (coalesce(b.permissions, cr.permissions))
    union
    select m.user_id from ev, rule, public.org_members m
    where rule.recipients = 'org_owners' and m.org_id = ev.org_id and m.role = 'owner'
    union
    select (ev.payload ->> 'user_id')::uuid from ev, rule
    where rule.recipients = 'subject_user' and ev.payload ->> 'user_id' ~ '^[0-9a-f-]{36}$'
    union
    select ev.actor_user_id from ev, rule where rule.recipients = 'actor'
  ), recipients as (
    select c.user_id,
           private.notification_channel_enabled(c.user_id, rule.type, 'in_app') as in_app,
           private.notification_channel_enabled(c.user_id, rule.type, 'email') as email,
           private.notification_channel_enabled(c.user_id, rule.type, 'email_digest') as digest
    from candidates c cross join rule cross join ev
    join public.profiles p on p.id = c.user_id
    where c.user_id is not null
      and (rule.recipients = 'actor' or c.user_id is distinct from ev.actor_user_id)
  ), ctx as (
    select ev.payload || jsonb_build_object(
             'org_id', ev.org_id,
             'org_name', o.name,
             'actor_name', coalesce(ap.display_name, case when ev.actor_api_key_id is not null then 'An API key' end, 'Someone'),
             'user_name', coalesce(up.display_name, 'A user')) as vars
    from ev
    join public.orgs o on o.id = ev.org_id
    left join public.profiles ap on ap.id = ev.actor_user_id
    left join public.profiles up on up.id = case when ev.payload ->> 'user_id' ~ '^[0-9a-f-]{36}$'
                                                 then (ev.payload ->> 'user_id')::uuid end
  ), ins as (
    insert into notify.notifications (org_id, user_id, event_id, type, title, body, link, data, archived_at, emailed_at)
    select ev.org_id, r.user_id, ev.id, ev.type,
           private.render_template(rule.title_template, ctx.vars),
           private.render_template(rule.body_template, ctx.vars),
           private.render_template(rule.link_template, ctx.vars),
           ev.payload,
           case when not r.in_app then now() end,
           case when r.email then now() end
    from recipients r cross join ev cross join rule cross join ctx
    where r.in_app or r.email or r.digest
    on conflict on constraint notifications_event_user_key do nothing
    returning notify.notifications.id
  )
  select coalesce(array_agg(ins.id), '{}') into v_ids from ins;

  perform realtime.send(
            jsonb_build_object('id', n.id, 'org_id', n.org_id, 'type', n.type, 'title', n.title, 'body', n.body,
                               'link', n.link, 'data', n.data, 'created_at', n.created_at),
            'notification', 'user:' || n.user_id::text, true)
  from notify.notifications n
  where n.id = any (v_ids) and n.archived_at is null;

  return query
    select n.id, n.user_id, u.email::text, n.type, n.title, n.body, n.link, o.name, n.emailed_at is not null
    from notify.notifications n
    join auth.users u on u.id = n.user_id
    join public.orgs o on o.id = n.org_id
    where n.id = any (v_ids);
end
$$;
revoke all on function private.fan_out_notifications(uuid) from public;
grant execute on function private.fan_out_notifications(uuid) to service_role;

-- Claims the digests due at p_now: users whose local time (profiles.timezone) is 08:00–08:59
-- with notifications not yet mailed singly nor digested, whose type has email_digest on.
-- Marks them digested and returns one row per user; the caller queues the emails in the same
-- transaction, so a rerun in the same hour finds nothing.
create or replace function private.claim_notification_digests(p_now timestamptz, p_limit int default 500)
returns table (user_id uuid, email text, display_name text, items jsonb)
language plpgsql security definer
set search_path = ''
as $$
#variable_conflict use_column
begin
  return query
  with due_users as (
    select p.id, p.display_name
    from public.profiles p
    where extract(hour from p_now at time zone p.timezone) = 8
      and exists (select 1 from notify.notifications n
                  where n.user_id = p.id and n.digested_at is null and n.emailed_at is null
                    and n.created_at <= p_now and n.created_at > p_now - interval '7 days'
                    and private.notification_channel_enabled(n.user_id, n.type, 'email_digest'))
    order by p.id
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
