-- Deck demo data: a deck in each org (acme's published and shared in the org, globex's a draft),
-- an org theme each, and a template of acme's waiting in review with one of globex's published.
-- The decks' bodies follow functions/_shared/deck/kind.ts (one zod schema per layout).

insert into content.documents (id, org_id, kind, title, body, search_text, status, visibility, owner_id, tags, created_by, published_at) values
  ('a0000000-0000-4000-8000-0000000de001', 'a0000000-0000-4000-8000-00000000a000', 'deck', 'Plinth launch plan',
   '{"theme_id": "plinth-light", "dimensions": "16x9", "cards": [
      {"id": "c-title", "layout": "title", "data": {"title": "Plinth launch plan", "subtitle": "From private beta to general availability"}, "image": null, "notes": "Welcome everyone."},
      {"id": "c-why", "layout": "bullets", "data": {"title": "Why now", "bullets": ["Teams ship AI features weekly", "Backends are the bottleneck", "Supabase is where they build"]}, "image": null, "notes": ""},
      {"id": "c-numbers", "layout": "stats", "data": {"title": "Beta in numbers", "stats": [{"value": "120", "label": "teams"}, {"value": "4.8", "label": "satisfaction"}]}, "image": null, "notes": ""},
      {"id": "c-end", "layout": "closing", "data": {"title": "Questions?", "body": "launch@acme.test"}, "image": null, "notes": ""}]}',
   'Plinth launch plan
From private beta to general availability
Welcome everyone.
Why now
Teams ship AI features weekly
Backends are the bottleneck
Supabase is where they build
Beta in numbers
120
teams
4.8
satisfaction
Questions?
launch@acme.test', 'published', 'org', 'a0000000-0000-4000-8000-000000000001', '{launch}', 'a0000000-0000-4000-8000-000000000001', now()),
  ('a0000000-0000-4000-8000-0000000de002', 'a0000000-0000-4000-8000-00000000a000', 'deck', 'Seed round pitch (template in review)',
   '{"theme_id": "midnight", "dimensions": "16x9", "cards": [
      {"id": "c1", "layout": "title", "data": {"title": "Your company", "subtitle": "One line on what you do"}, "image": null, "notes": ""},
      {"id": "c2", "layout": "bullets", "data": {"title": "The problem", "bullets": ["Who hurts", "How much it costs them"]}, "image": null, "notes": ""}]}',
   'Your company
One line on what you do
The problem
Who hurts
How much it costs them', 'draft', 'org', 'a0000000-0000-4000-8000-000000000001', '{}', 'a0000000-0000-4000-8000-000000000001', null),
  ('b0000000-0000-4000-8000-0000000de001', 'b0000000-0000-4000-8000-00000000b000', 'deck', 'Globex quarterly review',
   '{"theme_id": "forest", "dimensions": "4x3", "cards": [
      {"id": "c-title", "layout": "title", "data": {"title": "Q3 review", "subtitle": "Globex operations"}, "image": null, "notes": ""},
      {"id": "c-wins", "layout": "text", "data": {"title": "Wins", "body": "Two new plants opened on schedule."}, "image": null, "notes": ""}]}',
   'Q3 review
Globex operations
Wins
Two new plants opened on schedule.', 'draft', 'org', 'b0000000-0000-4000-8000-000000000001', '{}', 'b0000000-0000-4000-8000-000000000001', null),
  ('b0000000-0000-4000-8000-0000000de002', 'b0000000-0000-4000-8000-00000000b000', 'deck', 'Quarterly report',
   '{"theme_id": "plinth-light", "dimensions": "16x9", "cards": [
      {"id": "c1", "layout": "title", "data": {"title": "Quarter in review", "subtitle": "Team name"}, "image": null, "notes": ""},
      {"id": "c2", "layout": "stats", "data": {"title": "Key numbers", "stats": [{"value": "0", "label": "metric"}]}, "image": null, "notes": ""}]}',
   'Quarter in review
Team name
Key numbers
0
metric', 'published', 'org', 'b0000000-0000-4000-8000-000000000001', '{}', 'b0000000-0000-4000-8000-000000000001', now())
on conflict (id) do nothing;

update content.documents set is_template = true, template_category = 'report', template_locale = 'en'
where id = 'b0000000-0000-4000-8000-0000000de002' and not is_template;

insert into deck.themes (id, org_id, name, tokens, color_keywords, tone_keywords, created_by) values
  ('a0000000-0000-4000-8000-0000000de0f1', 'a0000000-0000-4000-8000-00000000a000', 'Acme brand',
   '{"colors": {"background": "#FFFDF5", "text": "#111111", "accent": "#D94F2B", "muted": "#6B6B6B"}, "fonts": {"heading": "Inter", "body": "Inter"}, "radii": {"card": 8, "image": 4}, "backgrounds": {"card": "#FFFFFF", "title": "#FFE8DF"}}',
   '{red,cream}', '{bold,friendly}', 'a0000000-0000-4000-8000-000000000001'),
  ('b0000000-0000-4000-8000-0000000de0f1', 'b0000000-0000-4000-8000-00000000b000', 'Globex corporate',
   '{"colors": {"background": "#F5F7FA", "text": "#0F172A", "accent": "#0EA5E9", "muted": "#64748B"}, "fonts": {"heading": "IBM Plex Sans", "body": "IBM Plex Sans"}, "radii": {"card": 2, "image": 0}, "backgrounds": {"card": "#FFFFFF", "title": "#E0F2FE"}}',
   '{blue,grey}', '{corporate,precise}', 'b0000000-0000-4000-8000-000000000001')
on conflict (id) do nothing;

insert into deck.templates (document_id, org_id, category, locale, status, prompt, prompt_hash, batch_key, reviewed_by, reviewed_at) values
  ('a0000000-0000-4000-8000-0000000de002', 'a0000000-0000-4000-8000-00000000a000', 'pitch', 'en', 'review',
   'A seed round pitch deck for a B2B startup', encode(sha256(convert_to('a seed round pitch deck for a b2b startup', 'UTF8')), 'hex'), 'pitch:0', null, null),
  ('b0000000-0000-4000-8000-0000000de002', 'b0000000-0000-4000-8000-00000000b000', 'report', 'en', 'published',
   '', '', null, 'b0000000-0000-4000-8000-000000000001', now())
on conflict (document_id) do nothing;
