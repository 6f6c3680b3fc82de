-- Content demo data: a live note in acme and a live checklist in globex, each with a version, a
-- comment thread and a verified asset reference; in each org a private draft of its owner's,
-- shared with a colleague (acme's also with gina of globex); a link on acme's note. The live states are real Yjs states. Each
-- log holds one batch from a client whose earlier edit never reached the log (cut off
-- mid-push): compaction merges what it can and keeps such a batch until what it builds on
-- arrives, so these stay in the log.
-- The acme link's token (only its hash is stored): seed-link-acme-brand-voice-0000

insert into content.documents (id, org_id, kind, title, body, search_text, status, visibility, owner_id, tags, created_by,
                               version_count, last_version_revision, published_at) values
  ('a0000000-0000-4000-8000-0000000c0001', 'a0000000-0000-4000-8000-00000000a000', 'note', 'Brand voice',
   '{"type":"doc","content":[{"type":"heading","attrs":{"level":1},"content":[{"type":"text","text":"Brand voice"}]},{"type":"paragraph","content":[{"type":"text","text":"Our voice is "},{"type":"text","text":"bold","marks":[{"type":"bold"}]},{"type":"text","text":" and friendly."}]}]}', 'Brand voice
Our voice is bold and friendly.', 'published', 'link', 'a0000000-0000-4000-8000-000000000001', '{brand,guidelines}',
   'a0000000-0000-4000-8000-000000000001', 1, 1, now()),
  ('a0000000-0000-4000-8000-0000000c0002', 'a0000000-0000-4000-8000-00000000a000', 'note', 'Q3 pricing draft',
   '{"type": "doc", "content": [{"type": "paragraph", "content": [{"type": "text", "text": "Pro goes to 25 USD in Q3."}]}]}',
   'Pro goes to 25 USD in Q3.', 'draft', 'private', 'a0000000-0000-4000-8000-000000000001', '{pricing}',
   'a0000000-0000-4000-8000-000000000001', 0, 0, null),
  ('b0000000-0000-4000-8000-0000000c0002', 'b0000000-0000-4000-8000-00000000b000', 'note', 'Hiring plan',
   '{"type": "doc", "content": [{"type": "paragraph", "content": [{"type": "text", "text": "Two engineers by March."}]}]}',
   'Two engineers by March.', 'draft', 'private', 'b0000000-0000-4000-8000-000000000001', '{hiring}',
   'b0000000-0000-4000-8000-000000000001', 0, 0, null),
  ('b0000000-0000-4000-8000-0000000c0001', 'b0000000-0000-4000-8000-00000000b000', 'checklist', 'Launch checklist',
   '{"items":[{"id":"scope","text":"Agree on the campaign scope","done":true},{"id":"copy","text":"Write the launch copy","done":false}]}', 'Agree on the campaign scope
Write the launch copy', 'draft', 'org', 'b0000000-0000-4000-8000-000000000001', '{launch}',
   'b0000000-0000-4000-8000-000000000001', 1, 1, null)
on conflict (id) do nothing;

insert into content.live_states (document_id, org_id, ystate, ystate_sv) values
  ('a0000000-0000-4000-8000-0000000c0001', 'a0000000-0000-4000-8000-00000000a000',
   '\x010be9070007010764656661756c74030768656164696e6787e9070003097061726167726170682800e90700056c6576656c017d010700e90700060400e907030b4272616e6420766f6963650700e90701060400e9070f0d4f757220766f6963652069732086e9071c04626f6c64027b7d84e9071d04626f6c6486e9072104626f6c64046e756c6c84e907220e20616e6420667269656e646c792e00', '\x01e90731'),
  ('b0000000-0000-4000-8000-0000000c0001', 'b0000000-0000-4000-8000-00000000b000',
   '\x010ad10f000701056974656d73012800d10f0002696401770573636f70652700d10f000474657874020400d10f021b4167726565206f6e207468652063616d706169676e2073636f70652800d10f0004646f6e65017887d10f00012800d10f1f026964017704636f70792700d10f1f0474657874020400d10f2115577269746520746865206c61756e636820636f70792800d10f1f04646f6e65017900', '\x01d10f38')
on conflict (document_id) do nothing;

insert into content.doc_updates (document_id, updates)
select d.id, array[d.u]::bytea[]
from (values ('a0000000-0000-4000-8000-0000000c0001'::uuid, '\x0101ea070084e9073f074d6f6e6461792e00'::bytea),
             ('b0000000-0000-4000-8000-0000000c0001'::uuid, '\x0101d20f0084d10f46056c6567616c00'::bytea)) d (id, u)
where not exists (select 1 from content.doc_updates x where x.document_id = d.id);

insert into content.versions (org_id, document_id, number, revision, reason, message, title, body, ystate, created_by)
select d.org_id, d.id, 1, 1, 'save', 'First draft', d.title, d.body, s.ystate, d.owner_id
from content.documents d join content.live_states s on s.document_id = d.id
where d.id in ('a0000000-0000-4000-8000-0000000c0001', 'b0000000-0000-4000-8000-0000000c0001')
on conflict (document_id, number) do nothing;

insert into content.shares (id, org_id, document_id, grantee_kind, grantee_user_id, grantee_role, token_hash, level, allow_download,
                            expires_at, created_by) values
  -- gina (globex) may comment on alice's private pricing draft.
  ('a0000000-0000-4000-8000-0000000c5001', 'a0000000-0000-4000-8000-00000000a000', 'a0000000-0000-4000-8000-0000000c0002', 'user',
   'b0000000-0000-4000-8000-000000000001', null, null, 'comment', false, null, 'a0000000-0000-4000-8000-000000000001'),
  ('a0000000-0000-4000-8000-0000000c5002', 'a0000000-0000-4000-8000-00000000a000', 'a0000000-0000-4000-8000-0000000c0001', 'link',
   null, null, sha256(convert_to('seed-link-acme-brand-voice-0000', 'UTF8')), 'view', true, now() + interval '90 days',
   'a0000000-0000-4000-8000-000000000001'),
  -- max (globex) may comment on gina's private plan; globex's viewers may edit the checklist.
  ('b0000000-0000-4000-8000-0000000c5001', 'b0000000-0000-4000-8000-00000000b000', 'b0000000-0000-4000-8000-0000000c0002', 'user',
   'b0000000-0000-4000-8000-000000000003', null, null, 'comment', true, null, 'b0000000-0000-4000-8000-000000000001'),
  ('b0000000-0000-4000-8000-0000000c5002', 'b0000000-0000-4000-8000-00000000b000', 'b0000000-0000-4000-8000-0000000c0001', 'role',
   null, 'viewer', null, 'edit', true, null, 'b0000000-0000-4000-8000-000000000001')
on conflict (id) do nothing;

insert into content.comment_threads (id, org_id, document_id, anchor, anchor_status, created_by) values
  ('a0000000-0000-4000-8000-0000000c7001', 'a0000000-0000-4000-8000-00000000a000', 'a0000000-0000-4000-8000-0000000c0001',
   null, null, 'a0000000-0000-4000-8000-000000000003'),
  ('b0000000-0000-4000-8000-0000000c7001', 'b0000000-0000-4000-8000-00000000b000', 'b0000000-0000-4000-8000-0000000c0001',
   '{"element_id": "copy", "quoted_text": "launch copy"}', 'anchored', 'b0000000-0000-4000-8000-000000000003')
on conflict (id) do nothing;

insert into content.comments (id, org_id, thread_id, document_id, author_id, body, body_text, mentions) values
  ('a0000000-0000-4000-8000-0000000c8001', 'a0000000-0000-4000-8000-00000000a000', 'a0000000-0000-4000-8000-0000000c7001',
   'a0000000-0000-4000-8000-0000000c0001', 'a0000000-0000-4000-8000-000000000003',
   '[{"type": "text", "text": "Should we say "}, {"type": "text", "text": "warm"}, {"type": "text", "text": " instead of friendly?"}]',
   'Should we say warm instead of friendly?', '{}'),
  ('b0000000-0000-4000-8000-0000000c8001', 'b0000000-0000-4000-8000-00000000b000', 'b0000000-0000-4000-8000-0000000c7001',
   'b0000000-0000-4000-8000-0000000c0001', 'b0000000-0000-4000-8000-000000000003',
   '[{"type": "mention", "user_id": "b0000000-0000-4000-8000-000000000001"}, {"type": "text", "text": " can you draft this one?"}]',
   '@Gina Owner can you draft this one?', '{b0000000-0000-4000-8000-000000000001}')
on conflict (id) do nothing;

insert into content.assets (id, org_id, document_id, object_path, filename, declared_mime, declared_size, mime_type, size_bytes, sha256,
                            width, height, status, created_by, verified_at) values
  ('a0000000-0000-4000-8000-0000000c9001', 'a0000000-0000-4000-8000-00000000a000', 'a0000000-0000-4000-8000-0000000c0001',
   'a0000000-0000-4000-8000-00000000a000/a0000000-0000-4000-8000-0000000c0001/a0000000-0000-4000-8000-0000000c9001.png',
   'logo.png', 'image/png', 68, 'image/png', 68, 'a3b1d5e2f0c4978615a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708',
   1, 1, 'verified', 'a0000000-0000-4000-8000-000000000001', now()),
  ('b0000000-0000-4000-8000-0000000c9001', 'b0000000-0000-4000-8000-00000000b000', 'b0000000-0000-4000-8000-0000000c0001',
   'b0000000-0000-4000-8000-00000000b000/b0000000-0000-4000-8000-0000000c0001/b0000000-0000-4000-8000-0000000c9001.pdf',
   'brief.pdf', 'application/pdf', 1024, 'application/pdf', 1024, 'b4c2e6f3a1d5089726b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f70819',
   null, null, 'verified', 'b0000000-0000-4000-8000-000000000001', now())
on conflict (id) do nothing;
