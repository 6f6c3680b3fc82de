-- Deck analytics demo data: views of acme's launch plan (alice signed in, a link viewer and a
-- crawler) and of globex's quarterly review (gina), their card beacons, and the rollups the
-- worker's deck.analytics_rollup computes from them (computed here by the same function).

insert into deck.view_revisions (document_id, revision, org_id, card_ids, card_titles, card_hashes)
select d.id, d.revision, d.org_id,
       array(select c ->> 'id' from jsonb_array_elements(d.body -> 'cards') with ordinality t (c, o) order by o),
       array(select coalesce(c -> 'data' ->> 'title', c -> 'data' ->> 'quote', '') from jsonb_array_elements(d.body -> 'cards') with ordinality t (c, o) order by o),
       array(select encode(sha256(convert_to(c::text, 'UTF8')), 'hex') from jsonb_array_elements(d.body -> 'cards') with ordinality t (c, o) order by o)
from content.documents d
where d.id in ('a0000000-0000-4000-8000-0000000de001', 'b0000000-0000-4000-8000-0000000de001')
on conflict do nothing;

insert into deck.views (id, org_id, document_id, revision, source, share_id, user_id, viewer_key, bot, user_agent, referrer, started_at, last_seen_at)
select v.id::uuid, d.org_id, d.id, d.revision, v.source, null, v.user_id::uuid, v.viewer_key, v.bot, v.ua, v.referrer,
       now() - v.ago::interval, now() - v.ago::interval + interval '30 seconds'
from (values
  ('a0000000-0000-4000-8000-0000000de101', 'a0000000-0000-4000-8000-0000000de001', 'member', 'a0000000-0000-4000-8000-000000000001',
   'u:a0000000-0000-4000-8000-000000000001', false, 'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15', null, '2 hours'),
  ('a0000000-0000-4000-8000-0000000de102', 'a0000000-0000-4000-8000-0000000de001', 'link', null,
   'k:' || encode(sha256(convert_to('demo-link-viewer-key-0001', 'UTF8')), 'hex'), false,
   'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36', 'https://mail.example.test/', '1 hour'),
  ('a0000000-0000-4000-8000-0000000de103', 'a0000000-0000-4000-8000-0000000de001', 'link', null,
   'k:' || encode(sha256(convert_to('demo-crawler-key-0001', 'UTF8')), 'hex'), true,
   'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)', null, '50 minutes'),
  ('b0000000-0000-4000-8000-0000000de101', 'b0000000-0000-4000-8000-0000000de001', 'member', 'b0000000-0000-4000-8000-000000000001',
   'u:b0000000-0000-4000-8000-000000000001', false, 'Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0', null, '3 hours')
) v (id, document_id, source, user_id, viewer_key, bot, ua, referrer, ago)
join content.documents d on d.id = v.document_id::uuid
on conflict (id) do nothing;

insert into deck.card_events (org_id, view_id, document_id, revision, card_id, position, duration_ms, seq, event_key, bot, ts)
select v.org_id, v.id, v.document_id, v.revision, e.card_id, array_position(r.card_ids, e.card_id) - 1, e.ms, e.seq, 's:' || e.seq, v.bot,
       v.started_at + (e.seq + 1) * interval '5 seconds'
from (values
  ('a0000000-0000-4000-8000-0000000de101', 'c-title', 4000, 0),
  ('a0000000-0000-4000-8000-0000000de101', 'c-why', 6000, 1),
  ('a0000000-0000-4000-8000-0000000de102', 'c-title', 3000, 0),
  ('a0000000-0000-4000-8000-0000000de102', 'c-why', 5000, 1),
  ('a0000000-0000-4000-8000-0000000de102', 'c-numbers', 7000, 2),
  ('a0000000-0000-4000-8000-0000000de102', 'c-end', 2000, 3),
  ('a0000000-0000-4000-8000-0000000de103', 'c-title', 100, 0),
  ('b0000000-0000-4000-8000-0000000de101', 'c-title', 2500, 0),
  ('b0000000-0000-4000-8000-0000000de101', 'c-wins', 9000, 1)
) e (view_id, card_id, ms, seq)
join deck.views v on v.id = e.view_id::uuid
join deck.view_revisions r on r.document_id = v.document_id and r.revision = v.revision
on conflict do nothing;

select private.deck_rollup_document(id)
from content.documents
where id in ('a0000000-0000-4000-8000-0000000de001', 'b0000000-0000-4000-8000-0000000de001');
