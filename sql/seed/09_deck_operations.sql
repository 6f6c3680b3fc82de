-- AI card operations (functions/_shared/deck/operations/): one in each org. Acme's rewrite of its
-- launch deck's "Why now" card was applied; globex's condense of its review's "Wins" card met a
-- human edit and waits as a conflict with its proposal.

insert into deck.operations (id, org_id, document_id, card_id, op, params, base_revision, card_hash, base_card, idempotency_key, request_hash,
                             state, result, resulting_revision, actor_id, created_at, finished_at) values
  ('a0000000-0000-4000-8000-0000000de0a1', 'a0000000-0000-4000-8000-00000000a000', 'a0000000-0000-4000-8000-0000000de001',
   'c-why', 'rewrite', '{"tier": "balanced"}', 1, encode(sha256('seed:c-why'::bytea), 'hex'),
   '{"id": "c-why", "layout": "bullets", "data": {"title": "Why now", "bullets": ["Teams ship AI features weekly", "Backends are the bottleneck", "Supabase is where they build"]}, "image": null, "notes": ""}',
   'seed-rewrite-1',
   encode(sha256('seed:request:a1'::bytea), 'hex'), 'applied',
   '{"id": "c-why", "layout": "bullets", "data": {"title": "Why now", "bullets": ["AI features ship every week", "The backend is what slows teams down", "Supabase is where they already build"]}, "image": null, "notes": ""}',
   1, 'a0000000-0000-4000-8000-000000000001', now() - interval '1 day', now() - interval '1 day'),
  ('b0000000-0000-4000-8000-0000000de0a1', 'b0000000-0000-4000-8000-00000000b000', 'b0000000-0000-4000-8000-0000000de001',
   'c-wins', 'condense', '{"tier": "balanced"}', 1, encode(sha256('seed:c-wins'::bytea), 'hex'),
   '{"id": "c-wins", "layout": "text", "data": {"title": "Wins", "body": "Two new plants opened on schedule."}, "image": null, "notes": ""}',
   null,
   encode(sha256('seed:request:b1'::bytea), 'hex'), 'conflict',
   '{"id": "c-wins", "layout": "text", "data": {"title": "Wins", "body": "Two plants opened on time."}, "image": null, "notes": ""}',
   null, 'b0000000-0000-4000-8000-000000000001', now() - interval '2 hours', now() - interval '2 hours')
on conflict (id) do nothing;
