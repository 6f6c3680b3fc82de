-- Gaps the generic walks found (issue 13: tests/db/catalog-*.test.ts, tests/db/rpc-walk.test.ts).
--
-- 1. notify.notifications: a member of an org that requires MFA, signed in at aal1, read and
--    marked read their notifications from that org (the policies checked only user_id), and
--    mark_read / mark_all_read / unread_count acted on them too. docs/tenancy.md: such a member
--    "reads and writes none of its data". Notifications from orgs the user has left stay theirs.
-- 2. public.leave_org: an aal1 session could leave an org that requires MFA (a password alone
--    removed a membership, with its events and audit rows). It now needs aal2 there, like every
--    other write; an aal1 member still sees the org in my_orgs and can step up.

-- The orgs whose MFA rule the caller's session does not meet: the user's memberships in orgs
-- that require MFA, when the JWT is not aal2. Empty for aal2 sessions, API keys (which never
-- have notifications) and the service role. One array per statement, as the other list helpers.
create or replace function private.mfa_blocked_org_ids_array()
returns uuid[]
language plpgsql stable security definer
set search_path = ''
set plan_cache_mode = force_generic_plan
as $$
declare
  v_claims jsonb := coalesce(nullif(current_setting('request.jwt.claims', true), ''), '{}')::jsonb;
  v_uid uuid := nullif(v_claims ->> 'sub', '')::uuid;
  v_orgs uuid[];
begin
  if v_uid is null or coalesce(v_claims ->> 'aal', 'aal1') = 'aal2' then
    return '{}';
  end if;
  select array_agg(m.org_id) into v_orgs
  from public.org_members m join public.orgs o on o.id = m.org_id
  where m.user_id = v_uid and o.require_mfa;
  return coalesce(v_orgs, '{}');
end
$$;
comment on function private.mfa_blocked_org_ids_array() is
  'The orgs the caller belongs to whose require_mfa their session (aal1) does not meet; empty at aal2. For policies on rows that are a user''s own but come from an org (notifications).';
revoke all on function private.mfa_blocked_org_ids_array() from public, anon;
grant execute on function private.mfa_blocked_org_ids_array() to authenticated, service_role;

drop policy "users read their own notifications" on notify.notifications;
create policy "users read their own notifications" on notify.notifications
  for select to authenticated
  using (user_id = (select auth.uid())
         and not (org_id = any ((select private.mfa_blocked_org_ids_array())::uuid[])));

drop policy "users mark their own notifications" on notify.notifications;
create policy "users mark their own notifications" on notify.notifications
  for update to authenticated
  using (user_id = (select auth.uid())
         and not (org_id = any ((select private.mfa_blocked_org_ids_array())::uuid[])))
  with check (user_id = (select auth.uid())
              and not (org_id = any ((select private.mfa_blocked_org_ids_array())::uuid[])));

create or replace function public.mark_read(p_ids uuid[])
returns integer
language plpgsql security definer
set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_blocked uuid[] := private.mfa_blocked_org_ids_array();
  v_wanted int := (select count(distinct x) from unnest(p_ids) x where x is not null);
  v_mine int;
  v_marked int;
begin
  if p_ids is null or v_wanted = 0 or v_wanted > 1000 then
    raise exception 'p_ids must list 1 to 1000 notification ids' using errcode = '22023';
  end if;
  -- All or nothing: an id that is not the caller's (or does not exist, or comes from an org whose
  -- MFA rule the session does not meet) refuses the whole call.
  select count(*) into v_mine from notify.notifications n
  where n.id = any (p_ids) and n.user_id = v_uid and not (n.org_id = any (v_blocked));
  if v_mine <> v_wanted then
    raise exception '% of the notifications were not found', v_wanted - v_mine using errcode = 'PT404';
  end if;
  update notify.notifications n set read_at = now()
  where n.id = any (p_ids) and n.user_id = v_uid and n.read_at is null;
  get diagnostics v_marked = row_count;
  return v_marked;
end
$$;
comment on function public.mark_read(uuid[]) is 'Marks the caller''s notifications read; returns how many changed. Any id that is not the caller''s (or is from an org whose MFA rule the session does not meet) refuses the whole call (PT404).';

create or replace function public.mark_all_read(p_org_id uuid default null)
returns integer
language plpgsql security definer
set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_blocked uuid[] := private.mfa_blocked_org_ids_array();
  v_marked int;
begin
  update notify.notifications n set read_at = now()
  where n.user_id = v_uid and n.read_at is null and n.archived_at is null
    and (p_org_id is null or n.org_id = p_org_id)
    and not (n.org_id = any (v_blocked));
  get diagnostics v_marked = row_count;
  return v_marked;
end
$$;
comment on function public.mark_all_read(uuid) is 'Marks all the caller''s unread notifications read, or only those from one org; returns how many changed. Notifications from an org whose MFA rule the session does not meet are left alone.';

create or replace function public.unread_count()
returns bigint
language plpgsql stable security definer
set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_blocked uuid[] := private.mfa_blocked_org_ids_array();
begin
  if cardinality(v_blocked) = 0 then
    -- Index-only scan on notifications_unread_idx (partial: unread and unarchived), so the
    -- cost grows with the caller's unread rows only. Cheap enough to call on every page load.
    return (select count(*) from notify.notifications n
            where n.user_id = v_uid and n.read_at is null and n.archived_at is null);
  end if;
  -- An aal1 session of a member of an org that requires MFA: that org's notifications are hidden.
  return (select count(*) from notify.notifications n
          where n.user_id = v_uid and n.read_at is null and n.archived_at is null
            and not (n.org_id = any (v_blocked)));
end
$$;
comment on function public.unread_count() is 'The caller''s unread, unarchived notifications (not those from an org whose MFA rule the session does not meet). An index-only scan on a partial index: cheap enough for every page load.';

create or replace function public.leave_org(p_org_id uuid)
returns void
language plpgsql security definer
set search_path = ''
as $$
declare
  v_uid uuid := (select auth.uid());
  v_role text;
begin
  if v_uid is null then
    raise exception 'sign in as a user to leave an org' using errcode = '42501';
  end if;
  v_role := private.member_role(p_org_id, v_uid);
  if v_role is null then
    raise exception 'org not found' using errcode = 'PT404';
  end if;
  if not (p_org_id = any (array(select private.accessible_org_ids()))) then
    raise exception 'this org requires multi-factor authentication (aal2)' using errcode = '42501';
  end if;
  if private.lock_org(p_org_id) <> 'team' then
    raise exception 'you cannot leave your personal org' using errcode = '42501';
  end if;
  if v_role = 'owner' then
    perform private.assert_other_owner(p_org_id, v_uid);
  end if;
  delete from public.org_members where org_id = p_org_id and user_id = v_uid;
end
$$;
comment on function public.leave_org(uuid) is 'The caller leaves a team org. The last owner cannot leave; in an org that requires MFA, it needs an aal2 session (42501).';
