-- Decks (the AI presentation product), part 1: the schema, the document kind, themes, the price
-- table, template categories and the template review queue. A deck is a content document of kind
-- `deck` (versions, shares, comments, forks, live editing and search come from the content
-- engine); this schema holds only what is the product's own. Later parts: generations, exports,
-- analytics, AI card operations.

create schema if not exists deck;
grant usage on schema deck to authenticated, service_role;
comment on schema deck is 'Plinth presentation product: AI deck generation in stages with per-card and per-image credits, themes, templates with review, AI card operations, exports (PPTX, PDF, HTML) and per-card view analytics. Decks themselves are content.documents of kind deck.';

insert into content.kinds (kind, module, description) values
  ('deck', 'deck', 'A presentation: ordered cards with stable ids, a layout and data per card (one zod schema per layout), a theme and card dimensions');

-- ---------------------------------------------------------------------------
-- Themes: style tokens apart from content. Global themes (the gallery everyone signed in may
-- use, curated by the operator) and an org's own themes are two tables: an org's theme belongs
-- to its org like every tenant row; a global one belongs to no org. Ids never collide: global
-- ids are slugs, an org theme's id a uuid.
-- ---------------------------------------------------------------------------

create or replace function private.deck_valid_tokens(p_tokens jsonb) returns boolean
language sql immutable
set search_path = ''
as $$
  select jsonb_typeof(p_tokens) = 'object'
     and p_tokens ?& array['colors', 'fonts', 'radii', 'backgrounds']
     and jsonb_typeof(p_tokens -> 'colors') = 'object'
     and jsonb_typeof(p_tokens -> 'fonts') = 'object'
     and jsonb_typeof(p_tokens -> 'radii') = 'object'
     and jsonb_typeof(p_tokens -> 'backgrounds') = 'object'
     and octet_length(p_tokens::text) <= 16384
$$;
-- A check constraint runs as the writing role: members who add a theme need to call it.
revoke all on function private.deck_valid_tokens(jsonb) from public;
grant execute on function private.deck_valid_tokens(jsonb) to authenticated, service_role;

create table deck.global_themes (
  id text primary key check (id ~ '^[a-z][a-z0-9-]{1,63}$'),
  name text not null check (char_length(name) between 1 and 80),
  tokens jsonb not null check (private.deck_valid_tokens(tokens)),
  color_keywords text[] not null default '{}' check (cardinality(color_keywords) <= 20),
  tone_keywords text[] not null default '{}' check (cardinality(tone_keywords) <= 20),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
comment on table deck.global_themes is 'The global theme gallery (Gamma''s standard themes): style tokens everyone signed in may use. The operator curates it (service role); an org adds its own in deck.themes.';
comment on column deck.global_themes.id is 'A slug, which deck bodies (theme_id) and the generation API (themeId) name.';
comment on column deck.global_themes.tokens is '{"colors": {"background", "text", "accent", "muted"}, "fonts": {"heading", "body"}, "radii": {"card", "image"}, "backgrounds": {"card", "title"}}: what the exports and clients style cards with.';

create trigger global_themes_updated_at before update on deck.global_themes for each row execute function private.set_updated_at();

alter table deck.global_themes enable row level security;
revoke all on deck.global_themes from anon, authenticated;
grant all on deck.global_themes to service_role;
grant select on deck.global_themes to authenticated;
create policy "signed-in users read the global themes" on deck.global_themes for select to authenticated using (true);

create table deck.themes (
  id text primary key default gen_random_uuid()::text
    check (id ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'),
  org_id uuid not null references public.orgs (id) on delete cascade,
  name text not null check (char_length(name) between 1 and 80),
  tokens jsonb not null check (private.deck_valid_tokens(tokens)),
  color_keywords text[] not null default '{}' check (cardinality(color_keywords) <= 20),
  tone_keywords text[] not null default '{}' check (cardinality(tone_keywords) <= 20),
  created_by uuid references auth.users (id) on delete set null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create index themes_org_idx on deck.themes (org_id, name);
create index themes_created_by_idx on deck.themes (created_by);
comment on table deck.themes is 'An org''s own deck themes (Gamma''s custom themes): style tokens with color and tone keywords. Members read them; writers (content.write) add, change and delete them. A deck names its theme in its body (theme_id): one of these or a global theme.';
comment on column deck.themes.id is 'A uuid as text (global themes have slugs, so the two never collide).';
comment on column deck.themes.tokens is 'The same shape as deck.global_themes.tokens.';
comment on column deck.themes.color_keywords is 'Words describing its colors (Gamma colorKeywords), for search and suggestions.';
comment on column deck.themes.tone_keywords is 'Words describing its tone (Gamma toneKeywords).';

create trigger themes_updated_at before update on deck.themes for each row execute function private.set_updated_at();

alter table deck.themes enable row level security;
revoke all on deck.themes from anon, authenticated;
grant all on deck.themes to service_role;
grant select, insert, delete on deck.themes to authenticated;
grant update (name, tokens, color_keywords, tone_keywords) on deck.themes to authenticated;
create policy "members read their org's themes" on deck.themes
  for select to authenticated
  using (org_id in (select private.org_ids_with_permission('content.read')));
create policy "writers add their org's themes" on deck.themes
  for insert to authenticated
  with check (org_id in (select private.org_ids_with_permission('content.write')) and created_by = (select auth.uid()));
create policy "writers change their org's themes" on deck.themes
  for update to authenticated
  using (org_id in (select private.org_ids_with_permission('content.write')))
  with check (org_id in (select private.org_ids_with_permission('content.write')));
create policy "writers delete their org's themes" on deck.themes
  for delete to authenticated
  using (org_id in (select private.org_ids_with_permission('content.write')));

insert into deck.global_themes (id, name, tokens, color_keywords, tone_keywords) values
  ('plinth-light', 'Plinth Light',
   '{"colors": {"background": "#FFFFFF", "text": "#1B1F24", "accent": "#3B5BDB", "muted": "#6B7280"}, "fonts": {"heading": "Inter", "body": "Inter"}, "radii": {"card": 12, "image": 8}, "backgrounds": {"card": "#FFFFFF", "title": "#EEF2FF"}}',
   '{white,blue,light}', '{clean,professional,neutral}'),
  ('midnight', 'Midnight',
   '{"colors": {"background": "#0B1020", "text": "#E5E7EB", "accent": "#F59E0B", "muted": "#9CA3AF"}, "fonts": {"heading": "Space Grotesk", "body": "Inter"}, "radii": {"card": 16, "image": 12}, "backgrounds": {"card": "#111827", "title": "#0B1020"}}',
   '{dark,navy,amber}', '{bold,modern,technical}'),
  ('terracotta', 'Terracotta',
   '{"colors": {"background": "#FFF7F0", "text": "#3D2C23", "accent": "#C2410C", "muted": "#8B6F5E"}, "fonts": {"heading": "Playfair Display", "body": "Source Sans 3"}, "radii": {"card": 4, "image": 2}, "backgrounds": {"card": "#FFF7F0", "title": "#FDE7D6"}}',
   '{warm,orange,earth}', '{friendly,editorial,warm}'),
  ('forest', 'Forest',
   '{"colors": {"background": "#F4F8F4", "text": "#14281D", "accent": "#2F855A", "muted": "#5F7A68"}, "fonts": {"heading": "Merriweather", "body": "Inter"}, "radii": {"card": 10, "image": 6}, "backgrounds": {"card": "#FFFFFF", "title": "#E3F0E6"}}',
   '{green,natural,soft}', '{calm,trustworthy,organic}');

-- ---------------------------------------------------------------------------
-- Prices: credits per card and per image tier, as data. A generation reserves at the prices in
-- force when it starts and keeps them (it copies them), so a price change never moves a running one.
-- ---------------------------------------------------------------------------

create table deck.prices (
  key text primary key check (key in ('card', 'image:basic', 'image:advanced', 'image:premium')),
  credits bigint not null check (credits >= 0),
  description text not null check (char_length(description) between 1 and 200),
  updated_at timestamptz not null default now()
);
comment on table deck.prices is 'What a generation costs in credits: per card written (outline and layout included) and per image by tier. A failed image costs nothing. Change a row to change the price of generations that start afterwards.';

create trigger prices_updated_at before update on deck.prices for each row execute function private.set_updated_at();

alter table deck.prices enable row level security;
revoke all on deck.prices from anon, authenticated;
grant all on deck.prices to service_role;
grant select on deck.prices to authenticated;
create policy "signed-in users read the price table" on deck.prices for select to authenticated using (true);

insert into deck.prices (key, credits, description) values
  ('card', 3, 'One card: its share of the outline and layout, and its content'),
  ('image:basic', 2, 'One image at the basic tier (the AI gateway''s economy tier)'),
  ('image:advanced', 10, 'One image at the advanced tier (the balanced tier)'),
  ('image:premium', 20, 'One image at the premium tier');

-- ---------------------------------------------------------------------------
-- Templates: decks that are content templates, in categories. A generated template waits in
-- review; publishing it makes its document a template in the gallery.
-- ---------------------------------------------------------------------------

create table deck.template_categories (
  key text primary key check (key ~ '^[a-z][a-z0-9_-]{1,59}$'),
  name text not null check (char_length(name) between 1 and 80),
  description text not null default '' check (char_length(description) <= 300),
  position int not null default 0
);
comment on table deck.template_categories is 'The template gallery''s categories; content.documents.template_category of a deck template is one of these keys.';

alter table deck.template_categories enable row level security;
revoke all on deck.template_categories from anon, authenticated;
grant all on deck.template_categories to service_role;
grant select on deck.template_categories to authenticated;
create policy "signed-in users read the categories" on deck.template_categories for select to authenticated using (true);

insert into deck.template_categories (key, name, description, position) values
  ('pitch', 'Pitch decks', 'Raise money or win a partner', 10),
  ('sales', 'Sales', 'Proposals, case studies and product tours', 20),
  ('marketing', 'Marketing', 'Campaign plans, launches and brand stories', 30),
  ('report', 'Reports', 'Quarterly reviews, board updates and research findings', 40),
  ('education', 'Education', 'Lessons, workshops and training', 50),
  ('product', 'Product', 'Roadmaps, specs and release notes', 60),
  ('event', 'Events', 'Talks, keynotes and meetups', 70),
  ('personal', 'Personal', 'Portfolios, about-me and celebrations', 80);

create table deck.templates (
  document_id uuid primary key references content.documents (id) on delete cascade,
  org_id uuid not null references public.orgs (id) on delete cascade,
  category text not null references deck.template_categories (key),
  locale text not null default 'en' check (locale ~ '^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$'),
  status text not null default 'review' check (status in ('review', 'published', 'rejected')),
  prompt text not null default '' check (char_length(prompt) <= 4000),
  prompt_hash text not null default '' check (prompt_hash ~ '^([0-9a-f]{64})?$'),
  batch_key text check (char_length(batch_key) between 1 and 200),
  reviewed_by uuid references auth.users (id) on delete set null,
  reviewed_at timestamptz,
  review_note text check (char_length(review_note) <= 1000),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  check ((status = 'review') = (reviewed_at is null))
);
create index templates_org_status_idx on deck.templates (org_id, status, created_at desc);
create index templates_category_idx on deck.templates (category, status);
create index templates_reviewed_by_idx on deck.templates (reviewed_by);
create unique index templates_batch_key_idx on deck.templates (org_id, batch_key) where batch_key is not null;
create unique index templates_prompt_idx on deck.templates (org_id, category, prompt_hash) where prompt_hash <> '' and status <> 'rejected';
comment on table deck.templates is 'Deck templates and their review: a generated template waits in review (its document is not yet in the gallery); publishing makes the document a template (content.documents.is_template) in its category; rejecting keeps the document out of it.';
comment on column deck.templates.prompt is 'The prompt the template was generated from (empty for a deck saved as a template by hand).';
comment on column deck.templates.prompt_hash is 'sha256 of the normalized prompt: the same prompt is not generated twice into one category (near-duplicate guard).';
comment on column deck.templates.batch_key is 'The template batch''s own key for this template (category and index): a resumed batch finds what it already made.';

create trigger templates_updated_at before update on deck.templates for each row execute function private.set_updated_at();

alter table deck.templates enable row level security;
revoke all on deck.templates from anon, authenticated;
grant all on deck.templates to service_role;
grant select on deck.templates to authenticated;
-- Reviews are decided through deck.review_template; rows are written by the generation worker.
-- Only for decks the reader can read (content.documents' own policy): a private deck's template
-- row (its prompt) is its owner's and the org admins', like the deck.
create policy "readers see their org's templates and their review" on deck.templates
  for select to authenticated
  using (org_id in (select private.org_ids_with_permission('content.read'))
         and exists (select 1 from content.documents d where d.id = document_id));
