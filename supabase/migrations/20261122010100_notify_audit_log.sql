-- Events backbone, part 2: the append-only audit log, written by triggers on the
-- security-relevant tables, with secrets masked and the api request's metadata attached.

create table notify.audit_log (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null references public.orgs (id) on delete cascade,
  actor_user_id uuid references auth.users (id) on delete set null,
  actor_api_key_id uuid references public.api_keys (id) on delete set null,
  actor_role text not null,
  action text not null check (action in ('insert', 'update', 'delete')),
  target_table text not null,
  target_id text,
  before jsonb,
  after jsonb,
  request_id text,
  ip text,
  user_agent text,
  occurred_at timestamptz not null default now()
);
create index audit_log_org_id_idx on notify.audit_log (org_id, occurred_at desc);
create index audit_log_actor_user_idx on notify.audit_log (actor_user_id);
create index audit_log_actor_api_key_idx on notify.audit_log (actor_api_key_id);
comment on table notify.audit_log is 'Append-only record of changes to security-relevant tables (members, roles, invitations, API keys, org settings, …). No role may update or delete rows; they go only with their org.';
comment on column notify.audit_log.actor_role is 'The database role that made the change: authenticated (a user or API key), service_role, or postgres (migrations, admins).';
comment on column notify.audit_log.before is 'Changed columns before the change (whole row for deletes); secrets masked.';
comment on column notify.audit_log.after is 'Changed columns after the change (whole row for inserts); secrets masked.';

alter table notify.audit_log enable row level security;
revoke all on notify.audit_log from anon, authenticated, service_role;
grant select on notify.audit_log to authenticated, service_role;
create policy "org managers read their org's audit log" on notify.audit_log
  for select to authenticated
  using (org_id in (select private.org_ids_with_permission('org.manage')));

-- Refuses every update, delete and truncate, from every role. The only changes are the
-- foreign keys' own actions, which run nested in their RI triggers: deleting the org deletes
-- its log, and erasing a user (GDPR) nulls their actor id. No client can create triggers, so
-- nesting is never reachable from a client statement.
create or replace function private.audit_log_is_append_only() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if tg_op <> 'TRUNCATE' and pg_trigger_depth() > 1 then
    return coalesce(new, old);
  end if;
  raise exception 'the audit log is append-only' using errcode = '42501';
end
$$;
revoke all on function private.audit_log_is_append_only() from public;
create trigger audit_log_append_only before update or delete on notify.audit_log
  for each row execute function private.audit_log_is_append_only();
create trigger audit_log_no_truncate before truncate on notify.audit_log
  for each statement execute function private.audit_log_is_append_only();

-- Generic row auditor. Trigger arguments name columns to mask (their value becomes "***").
-- The org is the row's org_id, or its id on public.orgs.
create or replace function private.audit_row() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  v_new jsonb := case when tg_op <> 'DELETE' then to_jsonb(new) end;
  v_old jsonb := case when tg_op <> 'INSERT' then to_jsonb(old) end;
  v_row jsonb := coalesce(v_new, v_old);
  v_org uuid := coalesce(v_row ->> 'org_id', case when tg_table_name = 'orgs' then v_row ->> 'id' end)::uuid;
  v_masked text[] := coalesce(tg_argv::text[], '{}');
  v_before jsonb;
  v_after jsonb;
  v_req jsonb := private.request_meta();
  v_uid uuid := auth.uid();
  k text;
begin
  -- A cascade from deleting the org (or the user's personal org): nothing left to audit.
  if not exists (select 1 from public.orgs o where o.id = v_org) then
    return null;
  end if;
  foreach k in array v_masked loop
    if v_new ? k then v_new := jsonb_set(v_new, array[k], '"***"'); end if;
    if v_old ? k then v_old := jsonb_set(v_old, array[k], '"***"'); end if;
  end loop;
  if tg_op = 'UPDATE' then
    select jsonb_object_agg(n.key, o.value), jsonb_object_agg(n.key, n.value) into v_before, v_after
    from jsonb_each(v_new) n join jsonb_each(v_old) o using (key)
    where n.value is distinct from o.value and n.key not in ('updated_at', 'last_used_at');
    if v_after is null then
      return null; -- only bookkeeping columns changed
    end if;
  else
    v_before := v_old;
    v_after := v_new;
  end if;
  insert into notify.audit_log (org_id, actor_user_id, actor_api_key_id, actor_role, action, target_table, target_id,
                                before, after, request_id, ip, user_agent)
  values (v_org, (select u.id from auth.users u where u.id = v_uid), private.api_key_id(),
          coalesce(auth.role(), current_user), lower(tg_op), tg_table_schema || '.' || tg_table_name,
          coalesce(v_row ->> 'id', v_row ->> 'user_id'), v_before, v_after,
          v_req ->> 'id', v_req ->> 'ip', v_req ->> 'user_agent');
  return null;
end
$$;
revoke all on function private.audit_row() from public;

create trigger orgs_audit after insert or update on public.orgs
  for each row execute function private.audit_row();
create trigger org_members_audit after insert or update or delete on public.org_members
  for each row execute function private.audit_row();
create trigger org_roles_audit after insert or update or delete on public.org_roles
  for each row execute function private.audit_row();
create trigger invitations_audit after insert or update or delete on public.invitations
  for each row execute function private.audit_row('token_hash');
create trigger api_keys_audit after insert or update or delete on public.api_keys
  for each row execute function private.audit_row('secret_hash');
