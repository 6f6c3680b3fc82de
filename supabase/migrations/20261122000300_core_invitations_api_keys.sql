-- Tenancy core, part 3: invitations and org API keys. Only hashes of their secrets are stored.

create table public.invitations (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null references public.orgs (id) on delete cascade,
  email text not null check (email = lower(email) and email ~ '^[^@\s]+@[^@\s]+\.[^@\s]+$'),
  role text not null,
  token_hash bytea not null unique,
  invited_by uuid references auth.users (id) on delete set null,
  expires_at timestamptz not null,
  accepted_at timestamptz,
  accepted_by uuid references auth.users (id) on delete set null,
  revoked_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint invitation_resolved_once check (accepted_at is null or revoked_at is null)
);
-- One pending invitation per email and org: inviting again replaces the old one.
create unique index invitations_one_pending_idx on public.invitations (org_id, email)
  where accepted_at is null and revoked_at is null;
create index invitations_org_id_idx on public.invitations (org_id, created_at desc);
create index invitations_expiry_idx on public.invitations (expires_at) where accepted_at is null;
create index invitations_invited_by_idx on public.invitations (invited_by);
create index invitations_accepted_by_idx on public.invitations (accepted_by);
comment on table public.invitations is 'Invitations to join an org with a role. Single use, expiring (7 days by default), revocable. Only the SHA-256 of the token is stored; the token itself goes out by email.';
comment on column public.invitations.token_hash is 'sha256 of the invitation token. Never readable by clients.';

create trigger invitations_updated_at before update on public.invitations for each row execute function private.set_updated_at();
create trigger invitations_role_exists before insert or update of role on public.invitations
  for each row execute function private.check_member_role();

alter table public.invitations enable row level security;
alter table public.api_keys enable row level security;
revoke all on public.invitations, public.api_keys from anon, authenticated;
grant all on public.invitations, public.api_keys to service_role;
-- Column grants keep the hashes out of every client read.
grant select (id, org_id, email, role, invited_by, expires_at, accepted_at, accepted_by, revoked_at, created_at, updated_at)
  on public.invitations to authenticated;
grant select (id, org_id, name, prefix, scopes, expires_at, last_used_at, revoked_at, created_by, created_at, updated_at)
  on public.api_keys to authenticated;

create policy "member managers read their org's invitations" on public.invitations
  for select to authenticated
  using (org_id in (select private.org_ids_with_permission('members.manage')));
create policy "key managers read their org's API keys" on public.api_keys
  for select to authenticated
  using (org_id in (select private.org_ids_with_permission('api_keys.manage')));

-- URL-safe random token of n bytes.
create or replace function private.random_token(p_bytes int) returns text
language sql volatile
set search_path = ''
as $$
  select rtrim(translate(encode(extensions.gen_random_bytes(p_bytes), 'base64'), '+/', '-_'), '=')
$$;

create or replace function private.token_hash(p_token text) returns bytea
language sql immutable
set search_path = ''
as $$
  select sha256(convert_to(p_token, 'UTF8'))
$$;
revoke all on function private.random_token(int), private.token_hash(text) from public;

-- Resolves an API key for the api function: returns the key's org and scopes when it is
-- live, and records the use. Service role only.
create or replace function private.authenticate_api_key(p_key text)
returns table (key_id uuid, org_id uuid, scopes text[])
language plpgsql security definer
set search_path = ''
as $$
declare
  v_parts text[] := regexp_match(p_key, '^plk_([A-Za-z0-9]{12})_([A-Za-z0-9_-]{32,64})$');
  v_key public.api_keys;
begin
  if v_parts is null then
    return;
  end if;
  select * into v_key from public.api_keys k where k.prefix = v_parts[1];
  if v_key.id is null or v_key.secret_hash <> private.token_hash(v_parts[2])
     or v_key.revoked_at is not null or (v_key.expires_at is not null and v_key.expires_at <= now()) then
    return;
  end if;
  if v_key.last_used_at is null or v_key.last_used_at < now() - interval '1 minute' then
    update public.api_keys set last_used_at = now() where id = v_key.id;
  end if;
  return query select v_key.id, v_key.org_id, v_key.scopes;
end
$$;
revoke all on function private.authenticate_api_key(text) from public;
grant execute on function private.authenticate_api_key(text) to service_role;

-- Deletes invitations that can no longer be used; run by the worker's schedule.
create or replace function private.purge_dead_invitations(p_keep interval default interval '30 days') returns int
language sql security definer
set search_path = ''
as $$
  with gone as (
    delete from public.invitations i
    where i.accepted_at is null
      and (i.expires_at < now() or i.revoked_at < now() - p_keep)
    returning 1)
  select count(*)::int from gone
$$;
revoke all on function private.purge_dead_invitations(interval) from public;
grant execute on function private.purge_dead_invitations(interval) to service_role;

-- Issues a fresh token for a pending invitation and returns it with what its email needs.
-- The invitation email job calls it just before sending, so the plain token lives only in
-- the email (never in a job payload). Service role only.
create or replace function private.reissue_invitation_token(p_invitation_id uuid)
returns table (token text, email text, role text, expires_at timestamptz, org_name text, inviter_name text)
language plpgsql security definer
set search_path = ''
as $$
declare
  v_token text := private.random_token(32);
begin
  return query
    with updated as (
      update public.invitations i set token_hash = private.token_hash(v_token)
      where i.id = p_invitation_id and i.accepted_at is null and i.revoked_at is null and i.expires_at > now()
      returning i.org_id, i.email, i.role, i.expires_at, i.invited_by)
    select v_token, u.email, u.role, u.expires_at, o.name, p.display_name
    from updated u
    join public.orgs o on o.id = u.org_id
    left join public.profiles p on p.id = u.invited_by;
end
$$;
revoke all on function private.reissue_invitation_token(uuid) from public;
grant execute on function private.reissue_invitation_token(uuid) to service_role;
