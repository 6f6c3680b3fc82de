-- Demo data: two team orgs (acme, globex) with an owner, an admin, a member and a viewer
-- each, plus a consultant who belongs to both. Every seeded user's password is "password".
-- Users are inserted the way GoTrue writes them, so the signup trigger builds profiles and personal orgs.

insert into auth.users (instance_id, id, aud, role, email, encrypted_password, email_confirmed_at,
                        raw_app_meta_data, raw_user_meta_data, created_at, updated_at, is_anonymous)
select '00000000-0000-0000-0000-000000000000', u.id::uuid, 'authenticated', 'authenticated', u.email,
       extensions.crypt('password', extensions.gen_salt('bf')), now(),
       '{"provider": "email", "providers": ["email"]}'::jsonb,
       jsonb_build_object('full_name', u.full_name, 'timezone', u.tz),
       now(), now(), false
from (values
  ('a0000000-0000-4000-8000-000000000001', 'alice@acme.test',  'Alice Owner',   'Europe/Berlin'),
  ('a0000000-0000-4000-8000-000000000002', 'adam@acme.test',   'Adam Admin',    'Europe/Berlin'),
  ('a0000000-0000-4000-8000-000000000003', 'mia@acme.test',    'Mia Member',    'America/New_York'),
  ('a0000000-0000-4000-8000-000000000004', 'victor@acme.test', 'Victor Viewer', 'UTC'),
  ('b0000000-0000-4000-8000-000000000001', 'gina@globex.test', 'Gina Owner',    'Asia/Kolkata'),
  ('b0000000-0000-4000-8000-000000000002', 'gus@globex.test',  'Gus Admin',     'Asia/Kolkata'),
  ('b0000000-0000-4000-8000-000000000003', 'max@globex.test',  'Max Member',    'UTC'),
  ('b0000000-0000-4000-8000-000000000004', 'vera@globex.test', 'Vera Viewer',   'UTC'),
  ('c0000000-0000-4000-8000-000000000001', 'sam@consult.test', 'Sam Consultant','Europe/London')
) as u (id, email, full_name, tz)
on conflict (id) do nothing;

insert into public.orgs (id, slug, name, kind, created_by, settings) values
  ('a0000000-0000-4000-8000-00000000a000', 'acme', 'Acme Inc.', 'team', 'a0000000-0000-4000-8000-000000000001', '{"brand_color": "#d94f2b"}'),
  ('b0000000-0000-4000-8000-00000000b000', 'globex', 'Globex Corporation', 'team', 'b0000000-0000-4000-8000-000000000001', '{"brand_color": "#1f6feb"}')
on conflict (id) do nothing;

insert into public.org_members (org_id, user_id, role) values
  ('a0000000-0000-4000-8000-00000000a000', 'a0000000-0000-4000-8000-000000000001', 'owner'),
  ('a0000000-0000-4000-8000-00000000a000', 'a0000000-0000-4000-8000-000000000002', 'admin'),
  ('a0000000-0000-4000-8000-00000000a000', 'a0000000-0000-4000-8000-000000000003', 'member'),
  ('a0000000-0000-4000-8000-00000000a000', 'a0000000-0000-4000-8000-000000000004', 'viewer'),
  ('a0000000-0000-4000-8000-00000000a000', 'c0000000-0000-4000-8000-000000000001', 'member'),
  ('b0000000-0000-4000-8000-00000000b000', 'b0000000-0000-4000-8000-000000000001', 'owner'),
  ('b0000000-0000-4000-8000-00000000b000', 'b0000000-0000-4000-8000-000000000002', 'admin'),
  ('b0000000-0000-4000-8000-00000000b000', 'b0000000-0000-4000-8000-000000000003', 'member'),
  ('b0000000-0000-4000-8000-00000000b000', 'b0000000-0000-4000-8000-000000000004', 'viewer'),
  ('b0000000-0000-4000-8000-00000000b000', 'c0000000-0000-4000-8000-000000000001', 'admin')
on conflict do nothing;

insert into public.org_roles (org_id, key, name, description, rank, permissions) values
  ('a0000000-0000-4000-8000-00000000a000', 'billing_clerk', 'Billing clerk', 'Reads content and manages billing', 15,
   array['billing.manage', 'content.read']),
  ('b0000000-0000-4000-8000-00000000b000', 'editor', 'Editor', 'Writes content but cannot run AI', 18,
   array['content.read', 'content.write'])
on conflict do nothing;

-- Pending invitations. Their tokens are not recoverable (only hashes are stored); re-invite to get one.
insert into public.invitations (org_id, email, role, token_hash, invited_by, expires_at) values
  ('a0000000-0000-4000-8000-00000000a000', 'newhire@acme.test', 'member',
   sha256(convert_to('seed-invite-acme', 'UTF8')), 'a0000000-0000-4000-8000-000000000001', now() + interval '7 days'),
  ('b0000000-0000-4000-8000-00000000b000', 'contractor@globex.test', 'viewer',
   sha256(convert_to('seed-invite-globex', 'UTF8')), 'b0000000-0000-4000-8000-000000000001', now() + interval '7 days')
on conflict do nothing;

-- Demo API keys (content.read), printed by `npm start`:
--   plk_acmedemo0001_acme-demo-secret-0000000000000000000000
--   plk_globexdemo01_globex-demo-secret-00000000000000000000
insert into public.api_keys (org_id, name, prefix, secret_hash, scopes, created_by) values
  ('a0000000-0000-4000-8000-00000000a000', 'Demo key', 'acmedemo0001',
   sha256(convert_to('acme-demo-secret-0000000000000000000000', 'UTF8')), array['content.read'],
   'a0000000-0000-4000-8000-000000000001'),
  ('b0000000-0000-4000-8000-00000000b000', 'Demo key', 'globexdemo01',
   sha256(convert_to('globex-demo-secret-00000000000000000000', 'UTF8')), array['content.read'],
   'b0000000-0000-4000-8000-000000000001')
on conflict do nothing;
