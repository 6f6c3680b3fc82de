-- Demo notifications and preferences for both seeded orgs (acme and globex), so the inbox,
-- the unread count and the settings screen have something to show.

insert into notify.notifications (id, org_id, user_id, type, title, body, link, data, read_at, created_at) values
  ('a0000000-0000-4000-8000-0000000a0001', 'a0000000-0000-4000-8000-00000000a000', 'a0000000-0000-4000-8000-000000000001',
   'member.joined', 'Mia Member joined Acme Inc.', 'Mia Member joined Acme Inc. as member.', '/orgs/a0000000-0000-4000-8000-00000000a000/members',
   '{"user_id": "a0000000-0000-4000-8000-000000000003", "role": "member"}', null, now() - interval '2 hours'),
  ('a0000000-0000-4000-8000-0000000a0002', 'a0000000-0000-4000-8000-00000000a000', 'a0000000-0000-4000-8000-000000000002',
   'api_key.created', 'New API key in Acme Inc.', 'Alice Owner created the API key "Demo key" (acmedemo0001…) in Acme Inc.',
   '/orgs/a0000000-0000-4000-8000-00000000a000/api-keys',
   '{"name": "Demo key", "prefix": "acmedemo0001", "scopes": ["content.read"]}', now() - interval '1 hour', now() - interval '3 hours'),
  ('a0000000-0000-4000-8000-0000000a0003', 'a0000000-0000-4000-8000-00000000a000', 'a0000000-0000-4000-8000-000000000003',
   'member.role_changed', 'Your role in Acme Inc. changed', 'Alice Owner changed your role in Acme Inc. from viewer to member.',
   '/orgs/a0000000-0000-4000-8000-00000000a000',
   '{"user_id": "a0000000-0000-4000-8000-000000000003", "old_role": "viewer", "new_role": "member"}', null, now() - interval '1 day'),
  ('b0000000-0000-4000-8000-0000000b0001', 'b0000000-0000-4000-8000-00000000b000', 'b0000000-0000-4000-8000-000000000001',
   'member.joined', 'Max Member joined Globex Corporation', 'Max Member joined Globex Corporation as member.',
   '/orgs/b0000000-0000-4000-8000-00000000b000/members',
   '{"user_id": "b0000000-0000-4000-8000-000000000003", "role": "member"}', null, now() - interval '2 hours'),
  ('b0000000-0000-4000-8000-0000000b0002', 'b0000000-0000-4000-8000-00000000b000', 'b0000000-0000-4000-8000-000000000003',
   'member.role_changed', 'Your role in Globex Corporation changed', 'Gina Owner changed your role in Globex Corporation from viewer to member.',
   '/orgs/b0000000-0000-4000-8000-00000000b000',
   '{"user_id": "b0000000-0000-4000-8000-000000000003", "old_role": "viewer", "new_role": "member"}', now() - interval '5 hours', now() - interval '1 day')
on conflict (id) do nothing;

-- Adam takes member.joined by email as it happens; Gus wants no API-key emails; Max skips the digest.
insert into notify.notification_preferences (user_id, type, channel, enabled) values
  ('a0000000-0000-4000-8000-000000000002', 'member.joined', 'email', true),
  ('a0000000-0000-4000-8000-000000000003', 'member.role_changed', 'email_digest', true),
  ('b0000000-0000-4000-8000-000000000002', 'api_key.created', 'email', false),
  ('b0000000-0000-4000-8000-000000000003', 'member.joined', 'email_digest', false)
on conflict do nothing;
