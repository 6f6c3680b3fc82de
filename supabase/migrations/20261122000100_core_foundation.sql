-- Tenancy core, part 1: the private helper schema, shared triggers, and the
-- permission and built-in role catalogs.

create extension if not exists pgcrypto with schema extensions;

-- Helpers that RLS policies and RPCs call. Never exposed through the API.
create schema if not exists private;
revoke all on schema private from public;
grant usage on schema private to authenticated, service_role;
comment on schema private is 'Plinth internals: security-definer helpers called by RLS and RPCs. Not exposed through the API.';

create or replace function private.set_updated_at() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  new.updated_at := now();
  return new;
end
$$;
revoke all on function private.set_updated_at() from public;

-- Permissions are closed: every grant in a role must name one of these.
create table public.permissions (
  key text primary key check (key ~ '^[a-z_]+\.[a-z_]+$'),
  description text not null
);
comment on table public.permissions is 'Catalog of permission keys that roles grant. RLS and RPCs ask private.has_permission(org_id, key).';

insert into public.permissions (key, description) values
  ('org.manage', 'Rename the org, change its settings and its MFA requirement'),
  ('members.manage', 'Invite, remove and change the role of members (up to the caller''s own rank); manage custom roles'),
  ('billing.manage', 'Manage the subscription, payment methods and credit purchases; read billing history'),
  ('api_keys.manage', 'Create and revoke org API keys'),
  ('webhooks.manage', 'Manage outbound webhook endpoints and their secrets'),
  ('content.read', 'Read the org''s content'),
  ('content.write', 'Create and change the org''s content'),
  ('ai.use', 'Run AI generations that spend the org''s credits');

create table public.builtin_roles (
  key text primary key check (key in ('owner', 'admin', 'member', 'viewer')),
  rank int not null unique check (rank between 1 and 100),
  permissions text[] not null,
  description text not null
);
comment on table public.builtin_roles is 'The four built-in roles every org has, ordered by rank. Owner outranks admin outranks member outranks viewer.';
comment on column public.builtin_roles.rank is 'Higher ranks may act on lower or equal ranks, never on higher ones.';

insert into public.builtin_roles (key, rank, permissions, description) values
  ('owner', 40, array['org.manage','members.manage','billing.manage','api_keys.manage','webhooks.manage','content.read','content.write','ai.use'],
   'Full control, including deleting the org and transferring ownership'),
  ('admin', 30, array['org.manage','members.manage','billing.manage','api_keys.manage','webhooks.manage','content.read','content.write','ai.use'],
   'Runs the org day to day; cannot create owners or delete the org'),
  ('member', 20, array['content.read','content.write','ai.use'], 'Creates content and uses AI'),
  ('viewer', 10, array['content.read'], 'Reads content');

alter table public.permissions enable row level security;
alter table public.builtin_roles enable row level security;
revoke all on public.permissions, public.builtin_roles from anon, authenticated;
grant select on public.permissions, public.builtin_roles to authenticated;
grant all on public.permissions, public.builtin_roles to service_role;

create policy "signed-in users read the permission catalog" on public.permissions
  for select to authenticated using (true);
create policy "signed-in users read the built-in roles" on public.builtin_roles
  for select to authenticated using (true);
