-- Deck generation demo data: a finished generation in each org (acme's made its launch plan deck,
-- globex's its quarterly review), with their cards as the stages left them. No credits are held
-- for them (they are history); the prices are the ones deck.prices had when they ran.

insert into deck.generations (id, org_id, user_id, document_id, source, params, status, stage, progress, num_cards, image_tier,
                              price_card, price_image, credits_reserved, credits_deducted, cards_settled, images_settled,
                              cards_total, cards_done, images_total, images_done, images_failed, outline, finished_at) values
  ('a0000000-0000-4000-8000-0000000d6001', 'a0000000-0000-4000-8000-00000000a000', 'a0000000-0000-4000-8000-000000000001',
   'a0000000-0000-4000-8000-0000000de001', 'prompt',
   '{"inputText": "Plinth launch plan: from private beta to general availability", "numCards": 2, "textMode": "generate", "imageOptions": {"source": "noImages", "tier": "basic"}}',
   'completed', 'done', 100, 2, null, 3, 0, 6, 6, true, true, 2, 2, 0, 0, 0,
   '{"title": "Plinth launch plan", "cards": [{"title": "Plinth launch plan", "points": ["From private beta to general availability"]}, {"title": "Why now", "points": ["Teams ship AI features weekly"]}]}',
   now() - interval '1 day'),
  ('b0000000-0000-4000-8000-0000000d6001', 'b0000000-0000-4000-8000-00000000b000', 'b0000000-0000-4000-8000-000000000001',
   'b0000000-0000-4000-8000-0000000de001', 'prompt',
   '{"inputText": "Globex Q3 operations review", "numCards": 2, "textMode": "generate", "imageOptions": {"source": "noImages", "tier": "basic"}}',
   'completed', 'done', 100, 2, null, 3, 0, 6, 6, true, true, 2, 2, 0, 0, 0,
   '{"title": "Q3 review", "cards": [{"title": "Q3 review", "points": ["Globex operations"]}, {"title": "Wins", "points": ["Two new plants"]}]}',
   now() - interval '2 days')
on conflict (id) do nothing;

insert into deck.generation_cards (generation_id, position, org_id, card_id, layout, wants_image, content, content_source, image_status, broadcast_at) values
  ('a0000000-0000-4000-8000-0000000d6001', 0, 'a0000000-0000-4000-8000-00000000a000', 'c-title', 'title', false,
   '{"title": "Plinth launch plan", "subtitle": "From private beta to general availability"}', 'model', 'none', now() - interval '1 day'),
  ('a0000000-0000-4000-8000-0000000d6001', 1, 'a0000000-0000-4000-8000-00000000a000', 'c-why', 'bullets', false,
   '{"title": "Why now", "bullets": ["Teams ship AI features weekly", "Backends are the bottleneck", "Supabase is where they build"]}', 'model', 'none', now() - interval '1 day'),
  ('b0000000-0000-4000-8000-0000000d6001', 0, 'b0000000-0000-4000-8000-00000000b000', 'c-title', 'title', false,
   '{"title": "Q3 review", "subtitle": "Globex operations"}', 'model', 'none', now() - interval '2 days'),
  ('b0000000-0000-4000-8000-0000000d6001', 1, 'b0000000-0000-4000-8000-00000000b000', 'c-wins', 'text', false,
   '{"title": "Wins", "body": "Two new plants opened on schedule."}', 'model', 'none', now() - interval '2 days')
on conflict (generation_id, position) do nothing;
