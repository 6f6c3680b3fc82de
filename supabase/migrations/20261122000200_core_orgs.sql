-- Tenancy core, part 2: profiles, orgs, custom roles, memberships, the permission
-- helpers that every policy calls, and the signup and erasure hooks on auth.users.

create table public.profiles (
  id uuid primary key references auth.users (id) on delete cascade,
  display_name text check (char_length(display_name) <= 100),
  avatar_url text check (char_length(avatar_url) <= 2048),
  locale text not null default 'en' check (locale ~ '^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$'),
  timezone text not null default 'UTC',
  marketing_consent boolean not null default false,
  marketing_consent_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
comment on table public.profiles is 'One row per auth user, created at signup. Readable by the user and by members of orgs they share.';
comment on column public.profiles.marketing_consent_at is 'When marketing_consent last changed; set by trigger, as evidence of consent.';
comment on column public.profiles.timezone is 'IANA zone name; used for digests and other local-time schedules.';

create table public.orgs (
  id uuid primary key default gen_random_uuid(),
  slug text not null unique check (slug ~ '^[a-z0-9][a-z0-9-]{1,62}[a-z0-9]$'),
  name text not null check (char_length(btrim(name)) between 1 and 100),
  kind text not null check (kind in ('personal', 'team')),
  personal_user_id uuid unique references auth.users (id) on delete cascade,
  require_mfa boolean not null default false,
  settings jsonb not null default '{}' check (jsonb_typeof(settings) = 'object'),
  created_by uuid references auth.users (id) on delete set null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint personal_org_has_its_user check ((kind = 'personal') = (personal_user_id is not null))
);
create index orgs_created_by_idx on public.orgs (created_by);
comment on table public.orgs is 'Tenants. Every user has one personal org (deleted with the user); team orgs are made with create_org(). Change through RPCs only.';
comment on column public.orgs.personal_user_id is 'For a personal org, the one user it belongs to; deleting that user deletes the org.';
comment on column public.orgs.require_mfa is 'When true, members whose JWT is not aal2 can see the org exists but read and write none of its data.';
comment on column public.orgs.settings is 'Free-form org settings (a JSON object) that modules and clients read.';

create table public.org_roles (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null references public.orgs (id) on delete cascade,
  key text not null check (key ~ '^[a-z][a-z0-9_]{1,31}$' and key not in ('owner', 'admin', 'member', 'viewer')),
  name text not null check (char_length(btrim(name)) between 1 and 100),
  description text check (char_length(description) <= 500),
  rank int not null check (rank between 1 and 39),
  permissions text[] not null default '{}',
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (org_id, key)
);
comment on table public.org_roles is 'Custom roles an org defines on top of the built-in ones. rank places the role in the ordering (below owner); permissions must come from public.permissions.';

create table public.org_members (
  org_id uuid not null references public.orgs (id) on delete cascade,
  user_id uuid not null references public.profiles (id) on delete cascade,
  role text not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (org_id, user_id)
);
create index org_members_user_id_idx on public.org_members (user_id);
comment on table public.org_members is 'Who belongs to which org, with which role (built-in key or an org_roles key). Change through RPCs only, which keep the ownership invariants.';

create table public.api_keys (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null references public.orgs (id) on delete cascade,
  name text not null check (char_length(btrim(name)) between 1 and 100),
  prefix text not null unique,
  secret_hash bytea not null,
  scopes text[] not null check (cardinality(scopes) > 0),
  expires_at timestamptz,
  last_used_at timestamptz,
  revoked_at timestamptz,
  created_by uuid references auth.users (id) on delete set null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create index api_keys_org_id_idx on public.api_keys (org_id, created_at desc);
create index api_keys_created_by_idx on public.api_keys (created_by);
comment on table public.api_keys is 'Org API keys for server-to-server callers of the api function. The full key (plk_<prefix>_<secret>) is shown once at creation; only the sha256 of the secret is kept.';
comment on column public.api_keys.prefix is 'Public part of the key, shown in lists so people can tell keys apart.';
comment on column public.api_keys.scopes is 'Permissions (public.permissions keys) the key grants in its org.';
comment on column public.api_keys.last_used_at is 'Updated at most once a minute when the key authenticates.';

create trigger profiles_updated_at before update on public.profiles for each row execute function private.set_updated_at();
create trigger orgs_updated_at before update on public.orgs for each row execute function private.set_updated_at();
create trigger org_roles_updated_at before update on public.org_roles for each row execute function private.set_updated_at();
create trigger org_members_updated_at before update on public.org_members for each row execute function private.set_updated_at();
create trigger api_keys_updated_at before update on public.api_keys for each row execute function private.set_updated_at();

-- ---------------------------------------------------------------------------
-- Role and permission helpers (security definer: policies call them as the client).
-- ---------------------------------------------------------------------------

create or replace function private.role_rank(p_org_id uuid, p_role text) returns int
language sql stable security definer
set search_path = ''
as $$
  select coalesce(
    (select b.rank from public.builtin_roles b where b.key = p_role),
    (select r.rank from public.org_roles r where r.org_id = p_org_id and r.key = p_role))
$$;

create or replace function private.role_permissions(p_org_id uuid, p_role text) returns text[]
language sql stable security definer
set search_path = ''
as $$
  select coalesce(
    (select b.permissions from public.builtin_roles b where b.key = p_role),
    (select r.permissions from public.org_roles r where r.org_id = p_org_id and r.key = p_role),
    '{}'::text[])
$$;

-- The caller's MFA level: 'aal2' only when the JWT says the session passed a second factor.
create or replace function private.session_aal() returns text
language sql stable
set search_path = ''
as $$
  select coalesce((select auth.jwt()) ->> 'aal', 'aal1')
$$;

-- API-key callers carry the key id in their claims (set by the api function, never by a client).
create or replace function private.api_key_id() returns uuid
language sql stable
set search_path = ''
as $$
  select nullif((select auth.jwt()) ->> 'api_key_id', '')::uuid
$$;

-- Orgs the caller belongs to at all (MFA not considered): enough to see that the org exists.
-- For an API-key caller, the key's own org while the key is live.
create or replace function private.member_org_ids() returns setof uuid
language sql stable security definer
set search_path = ''
as $$
  select m.org_id from public.org_members m where m.user_id = (select auth.uid())
  union all
  select k.org_id from public.api_keys k
  where k.id = private.api_key_id() and k.revoked_at is null and (k.expires_at is null or k.expires_at > now())
$$;

-- Orgs whose data the caller may reach: member, and the org's MFA rule is met.
create or replace function private.accessible_org_ids() returns setof uuid
language sql stable security definer
set search_path = ''
as $$
  select m.org_id
  from public.org_members m
  join public.orgs o on o.id = m.org_id
  where m.user_id = (select auth.uid())
    and (not o.require_mfa or (select private.session_aal()) = 'aal2')
$$;

-- Orgs where the caller holds a permission. Policies use `org_id in (select ...)` so the set is
-- computed once per statement and the org_id index does the rest. This runs on every
-- RLS-checked request, so it is one joined query (no per-membership calls) in plpgsql,
-- whose plans are cached per session (a non-inlined SQL function re-plans on every call).
create or replace function private.org_ids_with_permission(p_permission text) returns setof uuid
language plpgsql stable security definer
set search_path = ''
as $$
declare
  -- Parse the claims once, here, rather than through auth.uid() and friends: on this hot
  -- path each nested call re-parses the JSON and re-plans its own body.
  v_claims jsonb := coalesce(nullif(current_setting('request.jwt.claims', true), ''), '{}')::jsonb;
  v_key uuid := nullif(v_claims ->> 'api_key_id', '')::uuid;
  v_uid uuid := nullif(v_claims ->> 'sub', '')::uuid;
  v_aal2 boolean := coalesce(v_claims ->> 'aal', 'aal1') = 'aal2';
begin
  if v_key is not null then
    return query
      select k.org_id from public.api_keys k
      where k.id = v_key and k.revoked_at is null
        and (k.expires_at is null or k.expires_at > now())
        and p_permission = any (k.scopes);
    return;
  end if;
  return query
    select m.org_id
    from public.org_members m
    join public.orgs o on o.id = m.org_id
    left join public.builtin_roles b on b.key = m.role
    left join public.org_roles r on r.org_id = m.org_id and r.key = m.role
    where m.user_id = v_uid
      and (v_aal2 or not o.require_mfa)
      and p_permission = any (coalesce(b.permissions, r.permissions));
end
$$;

create or replace function private.has_permission(p_org_id uuid, p_permission text) returns boolean
language sql stable security definer
set search_path = ''
as $$
  select exists (select 1 from private.org_ids_with_permission(p_permission) x where x = p_org_id)
$$;

-- The caller's rank in an org (null when not a member).
create or replace function private.my_rank(p_org_id uuid) returns int
language sql stable security definer
set search_path = ''
as $$
  select private.role_rank(m.org_id, m.role)
  from public.org_members m
  where m.org_id = p_org_id and m.user_id = (select auth.uid())
$$;

-- The caller's own permissions in an org (empty when not a member).
create or replace function private.my_permissions(p_org_id uuid) returns text[]
language sql stable security definer
set search_path = ''
as $$
  select coalesce((select private.role_permissions(m.org_id, m.role)
                   from public.org_members m
                   where m.org_id = p_org_id and m.user_id = (select auth.uid())), '{}'::text[])
$$;

-- Raised by RPCs. PostgREST maps SQLSTATE 42501 to HTTP 403 and PT404 to 404.
create or replace function private.require_permission(p_org_id uuid, p_permission text) returns void
language plpgsql stable security definer
set search_path = ''
as $$
begin
  if (select auth.uid()) is null then
    raise exception 'sign in as a user to do this' using errcode = '42501';
  end if;
  if not exists (select 1 from public.orgs o where o.id = p_org_id and o.id in (select private.member_org_ids())) then
    raise exception 'org not found' using errcode = 'PT404';
  end if;
  if not private.has_permission(p_org_id, p_permission) then
    if exists (select 1 from public.orgs o where o.id = p_org_id and o.require_mfa) and private.session_aal() <> 'aal2' then
      raise exception 'this org requires multi-factor authentication (aal2)' using errcode = '42501';
    end if;
    raise exception 'missing permission % in this org', p_permission using errcode = '42501';
  end if;
end
$$;

-- Locks the org row so membership changes in one org run one at a time; returns its kind.
create or replace function private.lock_org(p_org_id uuid) returns text
language plpgsql security definer
set search_path = ''
as $$
declare
  v_kind text;
begin
  select o.kind into v_kind from public.orgs o where o.id = p_org_id for update;
  if v_kind is null then
    raise exception 'org not found' using errcode = 'PT404';
  end if;
  return v_kind;
end
$$;

revoke all on function private.role_rank(uuid, text), private.role_permissions(uuid, text), private.session_aal(),
  private.member_org_ids(), private.accessible_org_ids(), private.api_key_id(),
  private.org_ids_with_permission(text), private.has_permission(uuid, text), private.my_rank(uuid), private.my_permissions(uuid),
  private.require_permission(uuid, text), private.lock_org(uuid) from public;
grant execute on function private.role_rank(uuid, text), private.role_permissions(uuid, text), private.session_aal(),
  private.member_org_ids(), private.accessible_org_ids(), private.api_key_id(),
  private.org_ids_with_permission(text), private.has_permission(uuid, text), private.my_rank(uuid),
  private.my_permissions(uuid)
  to authenticated, service_role;

-- ---------------------------------------------------------------------------
-- Integrity triggers: they hold for every writer, the service role included. They are
-- security definer because they must see every row whoever writes: GoTrue's own role at
-- signup, or a client whose RLS hides other members (a deferred trigger runs as the role
-- that commits).
-- ---------------------------------------------------------------------------

create or replace function private.check_member_role() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  -- Key-share lock on a custom role, so a concurrent delete of it waits for this assignment
  -- (and then sees it through guard_custom_role_in_use).
  if not exists (select 1 from public.builtin_roles b where b.key = new.role)
     and not exists (select 1 from public.org_roles r where r.org_id = new.org_id and r.key = new.role for key share) then
    raise exception 'unknown role "%" for this org', new.role using errcode = '22023';
  end if;
  return new;
end
$$;
create trigger org_members_role_exists before insert or update of role on public.org_members
  for each row execute function private.check_member_role();

-- Checked at commit, so a transfer that briefly has two owners (or one) passes.
create or replace function private.check_org_membership() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  v_org public.orgs;
  v_members int;
  v_owners int;
begin
  select * into v_org from public.orgs where id = coalesce(new.org_id, old.org_id);
  if v_org.id is null then
    return null; -- the org itself is being deleted
  end if;
  select count(*), count(*) filter (where role = 'owner') into v_members, v_owners
  from public.org_members where org_id = v_org.id;
  if v_org.kind = 'personal' and (v_members > 1 or exists (
      select 1 from public.org_members where org_id = v_org.id and user_id <> v_org.personal_user_id)) then
    raise exception 'a personal org has exactly one member' using errcode = '23514';
  end if;
  if v_owners = 0 then
    raise exception 'an org must keep at least one owner' using errcode = '23514';
  end if;
  return null;
end
$$;
create constraint trigger org_members_invariants after insert or update or delete on public.org_members
  deferrable initially deferred for each row execute function private.check_org_membership();

create or replace function private.check_custom_role() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  v_unknown text;
begin
  select p into v_unknown from unnest(new.permissions) p
  where p not in (select key from public.permissions) limit 1;
  if v_unknown is not null then
    raise exception 'unknown permission "%"', v_unknown using errcode = '22023';
  end if;
  new.permissions := array(select distinct unnest(new.permissions) order by 1);
  return new;
end
$$;
create trigger org_roles_valid before insert or update on public.org_roles
  for each row execute function private.check_custom_role();

-- A role that members hold, or pending invitations name, keeps its key and its org.
create or replace function private.guard_custom_role_in_use() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  if (tg_op = 'DELETE' or new.key <> old.key or new.org_id <> old.org_id) and (
       exists (select 1 from public.org_members m where m.org_id = old.org_id and m.role = old.key)
       or exists (select 1 from public.invitations i
                  where i.org_id = old.org_id and i.role = old.key and i.accepted_at is null and i.revoked_at is null)) then
    raise exception 'role "%" is still assigned to members or pending invitations; reassign or revoke them first', old.key
      using errcode = '23503';
  end if;
  return coalesce(new, old);
end
$$;
create trigger org_roles_in_use before update of key, org_id or delete on public.org_roles
  for each row execute function private.guard_custom_role_in_use();

create or replace function private.stamp_marketing_consent() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if new.timezone is distinct from old.timezone
     and not exists (select 1 from pg_catalog.pg_timezone_names where name = new.timezone) then
    raise exception 'unknown time zone "%"', new.timezone using errcode = '22023';
  end if;
  if new.marketing_consent is distinct from old.marketing_consent then
    new.marketing_consent_at := now();
  end if;
  return new;
end
$$;
create trigger profiles_validate before update on public.profiles
  for each row execute function private.stamp_marketing_consent();

-- ---------------------------------------------------------------------------
-- Signup and erasure, hooked on auth.users as GoTrue writes it.
-- ---------------------------------------------------------------------------

create or replace function private.handle_new_user() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  v_meta jsonb := coalesce(new.raw_user_meta_data, '{}'::jsonb);
  v_name text := coalesce(v_meta ->> 'full_name', v_meta ->> 'name', split_part(new.email, '@', 1), 'New user');
  v_tz text := v_meta ->> 'timezone';
  v_locale text := v_meta ->> 'locale';
  v_org uuid;
begin
  if v_tz is null or not exists (select 1 from pg_catalog.pg_timezone_names where name = v_tz) then
    v_tz := 'UTC';
  end if;
  if v_locale is null or v_locale !~ '^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$' then
    v_locale := 'en';
  end if;
  insert into public.profiles (id, display_name, avatar_url, locale, timezone, marketing_consent, marketing_consent_at)
  values (new.id, left(v_name, 100), left(v_meta ->> 'avatar_url', 2048), v_locale, v_tz,
          coalesce(v_meta -> 'marketing_consent' = 'true'::jsonb, false),
          case when v_meta -> 'marketing_consent' = 'true'::jsonb then now() end);

  insert into public.orgs (slug, name, kind, personal_user_id, created_by)
  values ('personal-' || replace(new.id::text, '-', ''), left(v_name, 100), 'personal', new.id, new.id)
  returning id into v_org;
  insert into public.org_members (org_id, user_id, role) values (v_org, new.id, 'owner');
  return new;
end
$$;
revoke all on function private.handle_new_user() from public;
create trigger on_auth_user_created after insert on auth.users
  for each row execute function private.handle_new_user();

-- Right to erasure: the personal org and all memberships go with the user (FK cascades),
-- but never leave a team org without an owner.
create or replace function private.guard_user_deletion() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  v_slugs text;
begin
  -- Lock the team orgs this user owns first, so two co-owners deleted at once are checked
  -- one after the other; the check below then runs on a fresh snapshot.
  perform 1 from public.orgs o
  where o.kind = 'team' and o.id in (select m.org_id from public.org_members m where m.user_id = old.id and m.role = 'owner')
  order by o.id
  for update;
  select string_agg(o.slug, ', ' order by o.slug) into v_slugs
  from public.org_members m
  join public.orgs o on o.id = m.org_id
  where m.user_id = old.id and m.role = 'owner' and o.kind = 'team'
    and not exists (select 1 from public.org_members x
                    where x.org_id = m.org_id and x.role = 'owner' and x.user_id <> old.id);
  if v_slugs is not null then
    raise exception 'cannot delete this user: they are the sole owner of team org(s) %', v_slugs
      using errcode = '23503', hint = 'Transfer ownership with transfer_ownership() or delete those orgs first.';
  end if;
  return old;
end
$$;
revoke all on function private.guard_user_deletion() from public;
create trigger on_auth_user_deleting before delete on auth.users
  for each row execute function private.guard_user_deletion();

-- ---------------------------------------------------------------------------
-- Grants and policies.
-- ---------------------------------------------------------------------------

alter table public.profiles enable row level security;
alter table public.orgs enable row level security;
alter table public.org_roles enable row level security;
alter table public.org_members enable row level security;

revoke all on public.profiles, public.orgs, public.org_roles, public.org_members from anon, authenticated;
grant all on public.profiles, public.orgs, public.org_roles, public.org_members to service_role;
grant select on public.orgs, public.org_roles, public.org_members to authenticated;
-- Co-members see each other's public profile, not marketing consent; users read their own
-- through public.my_profile().
grant select (id, display_name, avatar_url, locale, timezone, created_at, updated_at) on public.profiles to authenticated;
grant update (display_name, avatar_url, locale, timezone, marketing_consent) on public.profiles to authenticated;
grant insert, delete on public.org_roles to authenticated;
-- A custom role never moves between orgs.
grant update (key, name, description, rank, permissions) on public.org_roles to authenticated;

create policy "users read their own profile and those of people in their orgs" on public.profiles
  for select to authenticated
  using (
    id = (select auth.uid())
    or id in (select m.user_id from public.org_members m where m.org_id in (select private.accessible_org_ids()))
  );
create policy "users update their own profile" on public.profiles
  for update to authenticated
  using (id = (select auth.uid()))
  with check (id = (select auth.uid()));

-- Membership alone shows the org (so a member blocked by MFA learns why).
create policy "members see their orgs" on public.orgs
  for select to authenticated
  using (id in (select private.member_org_ids()));

create policy "members read their org's custom roles" on public.org_roles
  for select to authenticated
  using (org_id in (select private.accessible_org_ids()));
create policy "member managers add custom roles below their rank" on public.org_roles
  for insert to authenticated
  with check (
    org_id in (select private.org_ids_with_permission('members.manage'))
    and rank < private.my_rank(org_id)
    and permissions <@ private.my_permissions(org_id)
  );
create policy "member managers change custom roles below their rank" on public.org_roles
  for update to authenticated
  using (org_id in (select private.org_ids_with_permission('members.manage')) and rank < private.my_rank(org_id))
  with check (
    org_id in (select private.org_ids_with_permission('members.manage'))
    and rank < private.my_rank(org_id)
    and permissions <@ private.my_permissions(org_id)
  );
create policy "member managers delete custom roles below their rank" on public.org_roles
  for delete to authenticated
  using (org_id in (select private.org_ids_with_permission('members.manage')) and rank < private.my_rank(org_id));

create policy "members see their own membership and their orgs' members" on public.org_members
  for select to authenticated
  using (user_id = (select auth.uid()) or org_id in (select private.accessible_org_ids()));

-- The caller's own profile, consent included (column grants hide consent from co-members).
create or replace function public.my_profile() returns public.profiles
language sql stable security definer
set search_path = ''
as $$
  select p.* from public.profiles p where p.id = (select auth.uid())
$$;
comment on function public.my_profile() is 'The signed-in user''s own profile, including marketing consent (which other members cannot read).';
revoke all on function public.my_profile() from public, anon;
grant execute on function public.my_profile() to authenticated, service_role;
