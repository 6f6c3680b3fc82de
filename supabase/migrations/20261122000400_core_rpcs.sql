-- Tenancy core, part 4: the RPCs that keep the invariants, and the my_orgs view.
-- Every RPC that changes membership locks the org row first (private.lock_org), so
-- concurrent calls on one org run one after another and see each other's effects.

-- ----------------------------------------------------------------------------- orgs

create or replace function private.slugify(p_text text) returns text
language sql immutable
set search_path = ''
as $$
  select btrim(left(btrim(regexp_replace(lower(coalesce(p_text, '')), '[^a-z0-9]+', '-', 'g'), '-'), 48), '-')
$$;
revoke all on function private.slugify(text) from public;

create or replace function public.create_org(p_name text, p_slug text default null)
returns public.orgs
language plpgsql security definer
set search_path = ''
as $$
declare
  v_uid uuid := (select auth.uid());
  v_slug text := coalesce(p_slug, private.slugify(p_name));
  v_org public.orgs;
begin
  if v_uid is null then
    raise exception 'sign in as a user to create an org' using errcode = '42501';
  end if;
  -- A derived slug is padded or suffixed with lower-case hex, which the slug check always accepts.
  -- An explicit slug is taken as given, so the check constraint can refuse it.
  if p_slug is null and char_length(v_slug) < 3 then
    v_slug := ltrim(v_slug || '-' || substr(md5(private.random_token(8)), 1, 6), '-');
  end if;
  if p_slug is null and exists (select 1 from public.orgs where slug = v_slug) then
    v_slug := v_slug || '-' || substr(md5(private.random_token(8)), 1, 6);
  end if;
  begin
    insert into public.orgs (slug, name, kind, created_by)
    values (v_slug, btrim(p_name), 'team', v_uid)
    returning * into v_org;
  exception when unique_violation then
    raise exception 'the slug "%" is taken', v_slug using errcode = '23505';
  end;
  insert into public.org_members (org_id, user_id, role) values (v_org.id, v_uid, 'owner');
  return v_org;
end
$$;
comment on function public.create_org(text, text) is 'Creates a team org with the caller as its owner. The slug is derived from the name when not given.';

create or replace function public.update_org(
  p_org_id uuid, p_name text default null, p_slug text default null,
  p_settings jsonb default null, p_require_mfa boolean default null)
returns public.orgs
language plpgsql security definer
set search_path = ''
as $$
declare
  v_org public.orgs;
begin
  perform private.require_permission(p_org_id, 'org.manage');
  if p_require_mfa and private.session_aal() <> 'aal2' then
    raise exception 'sign in with a second factor (aal2) before requiring MFA, or you would lock yourself out'
      using errcode = '42501';
  end if;
  begin
    update public.orgs set
      name = coalesce(btrim(p_name), name),
      slug = coalesce(p_slug, slug),
      settings = coalesce(p_settings, settings),
      require_mfa = coalesce(p_require_mfa, require_mfa)
    where id = p_org_id
    returning * into v_org;
  exception when unique_violation then
    raise exception 'the slug "%" is taken', p_slug using errcode = '23505';
  end;
  return v_org;
end
$$;
comment on function public.update_org(uuid, text, text, jsonb, boolean) is 'Changes an org''s name, slug, settings or MFA requirement. Needs org.manage.';

create or replace function public.delete_org(p_org_id uuid, p_confirm_slug text)
returns void
language plpgsql security definer
set search_path = ''
as $$
declare
  v_org public.orgs;
begin
  perform private.require_permission(p_org_id, 'org.manage');
  -- The outbox dispatcher locks pending events and then needs a key-share lock on their org;
  -- taking those events before the org row keeps the two from deadlocking. (notify.events is
  -- created by a later migration of the same release; plpgsql resolves it at call time.)
  perform 1 from notify.events e where e.org_id = p_org_id and e.dispatched_at is null order by e.seq for update;
  if private.lock_org(p_org_id) <> 'team' then
    raise exception 'a personal org is deleted only with its user' using errcode = '42501';
  end if;
  if private.my_rank(p_org_id) < 40 or (select m.role from public.org_members m
      where m.org_id = p_org_id and m.user_id = (select auth.uid())) <> 'owner' then
    raise exception 'only an owner can delete the org' using errcode = '42501';
  end if;
  select * into v_org from public.orgs where id = p_org_id;
  if p_confirm_slug is distinct from v_org.slug then
    raise exception 'confirm by passing the org''s slug' using errcode = '22023';
  end if;
  delete from public.orgs where id = p_org_id;
end
$$;
comment on function public.delete_org(uuid, text) is 'Deletes a team org and everything in it. Owners only; pass the slug to confirm.';

-- ------------------------------------------------------------------------ members

create or replace function private.member_role(p_org_id uuid, p_user_id uuid) returns text
language sql stable security definer
set search_path = ''
as $$
  select m.role from public.org_members m where m.org_id = p_org_id and m.user_id = p_user_id
$$;
revoke all on function private.member_role(uuid, uuid) from public;

-- Shared checks for acting on another member: membership, rank, and team-only.
create or replace function private.authorize_member_change(p_org_id uuid, p_target uuid) returns text
language plpgsql security definer
set search_path = ''
as $$
declare
  v_target_role text;
begin
  perform private.require_permission(p_org_id, 'members.manage');
  if private.lock_org(p_org_id) <> 'team' then
    raise exception 'a personal org has exactly one member' using errcode = '42501';
  end if;
  if p_target = (select auth.uid()) then
    raise exception 'you cannot change your own membership this way; use leave_org or transfer_ownership'
      using errcode = '42501';
  end if;
  v_target_role := private.member_role(p_org_id, p_target);
  if v_target_role is null then
    raise exception 'that user is not a member of this org' using errcode = 'PT404';
  end if;
  if private.role_rank(p_org_id, v_target_role) > private.my_rank(p_org_id) then
    raise exception 'you cannot act on a member whose role outranks yours' using errcode = '42501';
  end if;
  return v_target_role;
end
$$;
revoke all on function private.authorize_member_change(uuid, uuid) from public;

create or replace function private.assert_other_owner(p_org_id uuid, p_user_id uuid) returns void
language plpgsql stable security definer
set search_path = ''
as $$
begin
  if not exists (select 1 from public.org_members m
                 where m.org_id = p_org_id and m.role = 'owner' and m.user_id <> p_user_id) then
    raise exception 'an org must keep at least one owner; transfer ownership first' using errcode = '23514';
  end if;
end
$$;
revoke all on function private.assert_other_owner(uuid, uuid) from public;

-- Whether the caller may hand out a role (by assignment or invitation): it must exist, not
-- outrank the caller, and grant no permission the caller lacks.
create or replace function private.assert_can_grant_role(p_org_id uuid, p_role text) returns void
language plpgsql stable security definer
set search_path = ''
as $$
declare
  v_rank int := private.role_rank(p_org_id, p_role);
begin
  if v_rank is null then
    raise exception 'unknown role "%" for this org', p_role using errcode = '22023';
  end if;
  if v_rank > private.my_rank(p_org_id) then
    raise exception 'you cannot grant a role that outranks your own' using errcode = '42501';
  end if;
  if not private.role_permissions(p_org_id, p_role) <@ private.my_permissions(p_org_id) then
    raise exception 'you cannot grant a role with permissions you do not hold' using errcode = '42501';
  end if;
end
$$;
revoke all on function private.assert_can_grant_role(uuid, text) from public;

create or replace function public.set_member_role(p_org_id uuid, p_user_id uuid, p_role text)
returns void
language plpgsql security definer
set search_path = ''
as $$
declare
  v_old text := private.authorize_member_change(p_org_id, p_user_id);
begin
  perform private.assert_can_grant_role(p_org_id, p_role);
  if v_old = 'owner' and p_role <> 'owner' then
    perform private.assert_other_owner(p_org_id, p_user_id);
  end if;
  update public.org_members set role = p_role where org_id = p_org_id and user_id = p_user_id;
end
$$;
comment on function public.set_member_role(uuid, uuid, text) is 'Changes another member''s role. Needs members.manage; neither the member''s current role nor the new one may outrank the caller.';

create or replace function public.remove_member(p_org_id uuid, p_user_id uuid)
returns void
language plpgsql security definer
set search_path = ''
as $$
declare
  v_role text := private.authorize_member_change(p_org_id, p_user_id);
begin
  if v_role = 'owner' then
    perform private.assert_other_owner(p_org_id, p_user_id);
  end if;
  delete from public.org_members where org_id = p_org_id and user_id = p_user_id;
end
$$;
comment on function public.remove_member(uuid, uuid) is 'Removes another member. Needs members.manage and a rank at least the member''s.';

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
  if private.lock_org(p_org_id) <> 'team' then
    raise exception 'you cannot leave your personal org' using errcode = '42501';
  end if;
  if v_role = 'owner' then
    perform private.assert_other_owner(p_org_id, v_uid);
  end if;
  delete from public.org_members where org_id = p_org_id and user_id = v_uid;
end
$$;
comment on function public.leave_org(uuid) is 'The caller leaves a team org. The last owner cannot leave.';

create or replace function public.transfer_ownership(p_org_id uuid, p_new_owner uuid)
returns void
language plpgsql security definer
set search_path = ''
as $$
declare
  v_uid uuid := (select auth.uid());
begin
  perform private.require_permission(p_org_id, 'members.manage');
  if private.lock_org(p_org_id) <> 'team' then
    raise exception 'a personal org cannot change owner' using errcode = '42501';
  end if;
  if private.member_role(p_org_id, v_uid) <> 'owner' then
    raise exception 'only an owner can transfer ownership' using errcode = '42501';
  end if;
  if p_new_owner = v_uid then
    raise exception 'you already own this org' using errcode = '22023';
  end if;
  if private.member_role(p_org_id, p_new_owner) is null then
    raise exception 'the new owner must already be a member' using errcode = 'PT404';
  end if;
  update public.org_members set role = 'owner' where org_id = p_org_id and user_id = p_new_owner;
  update public.org_members set role = 'admin' where org_id = p_org_id and user_id = v_uid;
end
$$;
comment on function public.transfer_ownership(uuid, uuid) is 'Makes another member an owner and the caller an admin. Owners only.';

-- -------------------------------------------------------------------- invitations

-- How many seats (members plus pending invitations) an org may fill; null = no limit.
-- The billing module replaces this with the org's plan entitlement.
create or replace function private.seat_limit(p_org_id uuid) returns bigint
language sql stable security definer
set search_path = ''
as $$
  select null::bigint
$$;
revoke all on function private.seat_limit(uuid) from public;

create or replace function private.assert_seat_available(p_org_id uuid, p_replacing_email text default null) returns void
language plpgsql stable security definer
set search_path = ''
as $$
declare
  v_limit bigint := private.seat_limit(p_org_id);
  v_used bigint;
begin
  if v_limit is null then
    return;
  end if;
  select (select count(*) from public.org_members m where m.org_id = p_org_id)
       + (select count(*) from public.invitations i
          where i.org_id = p_org_id and i.accepted_at is null and i.revoked_at is null and i.expires_at > now()
            and i.email is distinct from p_replacing_email)
    into v_used;
  if v_used >= v_limit then
    raise exception 'your plan includes % seats and all are taken; upgrade to add more', v_limit
      using errcode = 'PT402';
  end if;
end
$$;
revoke all on function private.assert_seat_available(uuid, text) from public;

create or replace function public.invite_member(
  p_org_id uuid, p_email text, p_role text default 'member', p_expires_in interval default interval '7 days')
returns table (invitation_id uuid, token text, expires_at timestamptz)
language plpgsql security definer
set search_path = ''
as $$
declare
  v_email text := lower(btrim(p_email));
  v_token text := private.random_token(32);
  v_id uuid;
  v_expires timestamptz := now() + p_expires_in;
begin
  perform private.require_permission(p_org_id, 'members.manage');
  if private.lock_org(p_org_id) <> 'team' then
    raise exception 'a personal org cannot have other members' using errcode = '42501';
  end if;
  if v_email is null or v_email !~ '^[^@\s]+@[^@\s]+\.[^@\s]+$' then
    raise exception 'invalid email address' using errcode = '22023';
  end if;
  perform private.assert_can_grant_role(p_org_id, p_role);
  if p_expires_in < interval '1 hour' or p_expires_in > interval '30 days' then
    raise exception 'an invitation expires between 1 hour and 30 days from now' using errcode = '22023';
  end if;
  if exists (select 1 from public.org_members m join auth.users u on u.id = m.user_id
             where m.org_id = p_org_id and lower(u.email) = v_email) then
    raise exception '% is already a member', v_email using errcode = '23505';
  end if;
  perform private.assert_seat_available(p_org_id, v_email);
  update public.invitations i set revoked_at = now()
  where i.org_id = p_org_id and i.email = v_email and i.accepted_at is null and i.revoked_at is null;
  insert into public.invitations (org_id, email, role, token_hash, invited_by, expires_at)
  values (p_org_id, v_email, p_role, private.token_hash(v_token), (select auth.uid()), v_expires)
  returning id into v_id;
  return query select v_id, v_token, v_expires;
end
$$;
comment on function public.invite_member(uuid, text, text, interval) is 'Invites an email with a role, replacing any pending invitation for that email. Returns the token once; POST /api/orgs/{id}/invitations also emails it.';

create or replace function public.accept_invitation(p_token text)
returns uuid
language plpgsql security definer
set search_path = ''
as $$
declare
  v_uid uuid := (select auth.uid());
  v_inv public.invitations;
  v_email text;
begin
  if v_uid is null then
    raise exception 'sign in to accept an invitation' using errcode = '42501';
  end if;
  -- Org first, then the invitation: the same lock order as invite_member, so a re-invite
  -- racing an accept waits instead of deadlocking.
  select * into v_inv from public.invitations where token_hash = private.token_hash(p_token);
  if v_inv.id is null then
    raise exception 'invitation not found' using errcode = 'PT404';
  end if;
  perform private.lock_org(v_inv.org_id);
  select * into v_inv from public.invitations where id = v_inv.id for update;
  if v_inv.id is null then
    raise exception 'invitation not found' using errcode = 'PT404';
  end if;
  if v_inv.accepted_at is not null then
    raise exception 'this invitation has already been used' using errcode = '22023';
  end if;
  if v_inv.revoked_at is not null then
    raise exception 'this invitation was revoked' using errcode = '22023';
  end if;
  if v_inv.expires_at <= now() then
    raise exception 'this invitation has expired' using errcode = '22023';
  end if;
  select lower(u.email) into v_email from auth.users u where u.id = v_uid and u.email_confirmed_at is not null;
  if v_email is null then
    raise exception 'verify your email address before accepting an invitation' using errcode = '42501';
  end if;
  if v_email <> v_inv.email then
    raise exception 'this invitation was sent to a different email address' using errcode = '42501';
  end if;
  if private.member_role(v_inv.org_id, v_uid) is not null then
    raise exception 'you are already a member of this org' using errcode = '23505';
  end if;
  insert into public.org_members (org_id, user_id, role) values (v_inv.org_id, v_uid, v_inv.role);
  update public.invitations set accepted_at = now(), accepted_by = v_uid where id = v_inv.id;
  return v_inv.org_id;
end
$$;
comment on function public.accept_invitation(text) is 'Joins the org an invitation is for. The caller''s verified email must match; each invitation works once.';

create or replace function public.revoke_invitation(p_invitation_id uuid)
returns void
language plpgsql security definer
set search_path = ''
as $$
declare
  v_inv public.invitations;
begin
  select * into v_inv from public.invitations where id = p_invitation_id;
  if v_inv.id is null then
    raise exception 'invitation not found' using errcode = 'PT404';
  end if;
  perform private.require_permission(v_inv.org_id, 'members.manage');
  update public.invitations set revoked_at = now()
  where id = p_invitation_id and accepted_at is null and revoked_at is null;
  if not found then
    raise exception 'this invitation is no longer pending' using errcode = '22023';
  end if;
end
$$;
comment on function public.revoke_invitation(uuid) is 'Revokes a pending invitation. Needs members.manage.';

-- ----------------------------------------------------------------------- API keys

create or replace function public.create_api_key(
  p_org_id uuid, p_name text, p_scopes text[], p_expires_at timestamptz default null)
returns table (api_key_id uuid, key text, prefix text)
language plpgsql security definer
set search_path = ''
as $$
declare
  v_prefix text := substr(md5(private.random_token(16)), 1, 12);
  v_secret text := private.random_token(32);
  v_id uuid;
begin
  perform private.require_permission(p_org_id, 'api_keys.manage');
  if p_scopes is null or cardinality(p_scopes) = 0 then
    raise exception 'an API key needs at least one scope' using errcode = '22023';
  end if;
  if exists (select 1 from unnest(p_scopes) s where s not in (select p.key from public.permissions p)) then
    raise exception 'unknown scope in %', p_scopes using errcode = '22023';
  end if;
  if not p_scopes <@ private.my_permissions(p_org_id) then
    raise exception 'an API key cannot have scopes its creator lacks' using errcode = '42501';
  end if;
  if p_expires_at is not null and p_expires_at <= now() then
    raise exception 'expires_at must be in the future' using errcode = '22023';
  end if;
  insert into public.api_keys (org_id, name, prefix, secret_hash, scopes, expires_at, created_by)
  values (p_org_id, btrim(p_name), v_prefix, private.token_hash(v_secret),
          array(select distinct unnest(p_scopes) order by 1), p_expires_at, (select auth.uid()))
  returning id into v_id;
  return query select v_id, 'plk_' || v_prefix || '_' || v_secret, v_prefix;
end
$$;
comment on function public.create_api_key(uuid, text, text[], timestamptz) is 'Creates an org API key and returns it once. Scopes must be a subset of the caller''s permissions. Needs api_keys.manage.';

create or replace function public.revoke_api_key(p_api_key_id uuid)
returns void
language plpgsql security definer
set search_path = ''
as $$
declare
  v_org uuid;
begin
  select k.org_id into v_org from public.api_keys k where k.id = p_api_key_id;
  if v_org is null then
    raise exception 'API key not found' using errcode = 'PT404';
  end if;
  perform private.require_permission(v_org, 'api_keys.manage');
  update public.api_keys set revoked_at = now() where id = p_api_key_id and revoked_at is null;
  if not found then
    raise exception 'this API key is already revoked' using errcode = '22023';
  end if;
end
$$;
comment on function public.revoke_api_key(uuid) is 'Revokes an org API key at once. Needs api_keys.manage.';

-- ------------------------------------------------------------------------ reading

create view public.my_orgs with (security_invoker = true) as
select
  o.id, o.slug, o.name, o.kind, o.require_mfa, m.role,
  private.role_permissions(o.id, m.role) as permissions,
  (not o.require_mfa or private.session_aal() = 'aal2') as has_access,
  case when o.require_mfa and private.session_aal() <> 'aal2' then 'mfa_required' end as blocked_reason,
  m.created_at as joined_at
from public.org_members m
join public.orgs o on o.id = m.org_id
where m.user_id = (select auth.uid());
comment on view public.my_orgs is 'The signed-in user''s orgs with their role and permissions in each; has_access is false (blocked_reason ''mfa_required'') where the org requires MFA and the session is not aal2.';

-- Clients reach these RPCs and the view only when signed in.
revoke all on function
  public.create_org(text, text), public.update_org(uuid, text, text, jsonb, boolean), public.delete_org(uuid, text),
  public.set_member_role(uuid, uuid, text), public.remove_member(uuid, uuid), public.leave_org(uuid),
  public.transfer_ownership(uuid, uuid), public.invite_member(uuid, text, text, interval),
  public.accept_invitation(text), public.revoke_invitation(uuid),
  public.create_api_key(uuid, text, text[], timestamptz), public.revoke_api_key(uuid)
  from public, anon;
grant execute on function
  public.create_org(text, text), public.update_org(uuid, text, text, jsonb, boolean), public.delete_org(uuid, text),
  public.set_member_role(uuid, uuid, text), public.remove_member(uuid, uuid), public.leave_org(uuid),
  public.transfer_ownership(uuid, uuid), public.invite_member(uuid, text, text, interval),
  public.accept_invitation(text), public.revoke_invitation(uuid),
  public.create_api_key(uuid, text, text[], timestamptz), public.revoke_api_key(uuid)
  to authenticated, service_role;
revoke all on public.my_orgs from anon, authenticated;
grant select on public.my_orgs to authenticated, service_role;
