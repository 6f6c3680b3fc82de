-- Decks, part 2: generations (Gamma's Generate API). One row per generation, one per card of it.
-- The worker's deck.generate job runs the stages (outline, structure, cards' content, images),
-- storing each stage's artefact here before moving on, so a crash resumes at the failed stage and
-- nothing is paid for or asked of a provider twice. Credits: the whole deck is reserved at
-- admission at the prices in force then (copied onto the row): one reservation for the cards, one
-- for the images; each is settled when its stage ends with exactly what it produced (a failed
-- image or a fallback card costs nothing), and cancel or failure releases what is unspent.
-- Progress goes live on the creator's channel (user:<id>; org:<id> for an API key): deck.generation
-- on every stage and count change, deck.card for each finished card, in card order.

-- ---------------------------------------------------------------------------
-- Tables
-- ---------------------------------------------------------------------------

create table deck.generations (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null references public.orgs (id) on delete cascade,
  user_id uuid references auth.users (id) on delete set null,
  api_key_id uuid references public.api_keys (id) on delete set null,
  document_id uuid references content.documents (id) on delete set null,
  source text not null default 'prompt' check (source in ('prompt', 'template')),
  template_id uuid references content.documents (id) on delete set null,
  params jsonb not null check (jsonb_typeof(params) = 'object' and octet_length(params::text) <= 600000),
  idempotency_key text check (char_length(idempotency_key) between 1 and 200),
  status text not null default 'pending' check (status in ('pending', 'completed', 'failed', 'canceled')),
  stage text not null default 'queued'
    check (stage in ('queued', 'outline', 'outline_ready', 'structure', 'cards', 'images', 'done')),
  progress int not null default 0 check (progress between 0 and 100),
  num_cards int not null check (num_cards between 1 and 200),
  image_tier text check (image_tier in ('basic', 'advanced', 'premium')),
  price_card bigint not null check (price_card >= 0),
  price_image bigint not null check (price_image >= 0),
  cards_reservation_id uuid references billing.credit_reservations (id) on delete set null,
  images_reservation_id uuid references billing.credit_reservations (id) on delete set null,
  credits_reserved bigint not null default 0 check (credits_reserved >= 0),
  credits_deducted bigint not null default 0 check (credits_deducted >= 0),
  cards_settled boolean not null default false,
  images_settled boolean not null default false,
  cards_total int not null default 0,
  cards_done int not null default 0,
  cards_fallback int not null default 0,
  images_total int not null default 0,
  images_done int not null default 0,
  images_failed int not null default 0,
  outline jsonb check (outline is null or jsonb_typeof(outline) = 'object'),
  outline_approved_at timestamptz,
  hold_outline boolean not null default false,
  export_format text check (export_format in ('pptx', 'pdf', 'html')),
  export_id uuid,
  failed_runs int not null default 0,
  error jsonb check (error is null or (jsonb_typeof(error) = 'object' and error ? 'code' and error ? 'message')),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  finished_at timestamptz,
  check (num_nonnulls(user_id, api_key_id) <= 1),
  check ((status = 'pending') = (finished_at is null))
);
create index generations_org_idx on deck.generations (org_id, created_at desc);
create unique index generations_idempotency_idx on deck.generations (org_id, idempotency_key) where idempotency_key is not null;
create index generations_user_idx on deck.generations (user_id, created_at desc);
create index generations_api_key_idx on deck.generations (api_key_id);
create index generations_document_idx on deck.generations (document_id);
create index generations_template_idx on deck.generations (template_id);
create index generations_cards_reservation_idx on deck.generations (cards_reservation_id);
create index generations_images_reservation_idx on deck.generations (images_reservation_id);
comment on table deck.generations is 'A deck generation (Gamma''s Generate API): its request, stage, progress, the prices it was admitted at and its credits, and the outline artefact. The worker''s deck.generate job runs it; its cards are deck.generation_cards. Read by its creator (member or API key) and the org''s billing managers.';
comment on column deck.generations.user_id is 'The member who started it (null for an org API key, or after the member is deleted).';
comment on column deck.generations.api_key_id is 'The org API key that started it, if one did.';
comment on column deck.generations.document_id is 'The deck (content.documents of kind deck) the generation writes, made at admission.';
comment on column deck.generations.source is 'prompt: generated from inputText; template: a readable deck (template_id) adapted to a new prompt, keeping its cards'' count and layouts.';
comment on column deck.generations.params is 'The validated request (functions/_shared/deck/params.ts): inputText, textMode, textOptions, imageOptions, ...';
comment on column deck.generations.idempotency_key is 'The Idempotency-Key header of the POST: a repeat by the same submitter answers this generation.';
comment on column deck.generations.stage is 'queued → outline (→ outline_ready, held for the user''s approval) → structure → cards (content and images in parallel) → images (content done, images left) → done.';
comment on column deck.generations.image_tier is 'The price tier of each image (deck.prices image:<tier>); null when the request asked for noImages.';
comment on column deck.generations.price_card is 'Credits per card, copied from deck.prices at admission: a price change never moves a running generation.';
comment on column deck.generations.price_image is 'Credits per image at image_tier, copied from deck.prices at admission (0 without images).';
comment on column deck.generations.cards_reservation_id is 'The credits held for the cards (num_cards × price_card), settled when the last card is written.';
comment on column deck.generations.images_reservation_id is 'The credits held for the images (images_total × price_image), settled when the last image ends.';
comment on column deck.generations.credits_reserved is 'What admission reserved for the whole deck.';
comment on column deck.generations.credits_deducted is 'What has been charged: settled stages'' cards written by the model and images stored.';
comment on column deck.generations.cards_fallback is 'Cards the model could not write validly (after one repair): a deterministic card from the outline, charged nothing.';
comment on column deck.generations.outline is '{"title", "cards": [{"title", "points": []}]}: the outline stage''s artefact (edited by the user when held).';
comment on column deck.generations.hold_outline is 'The request asked to stop at outline_ready until the outline is approved.';
comment on column deck.generations.export_format is 'exportAs: an export of this format is requested when the deck is done.';
comment on column deck.generations.export_id is 'The export (deck.exports) requested on completion.';
comment on column deck.generations.failed_runs is 'Runs of deck.generate that ended in an error (a database or Storage fault): past the queue''s retries the generation fails, keeping and charging what it finished.';
comment on column deck.generations.error is '{"code", "message"} of a failed generation.';

create trigger generations_updated_at before update on deck.generations for each row execute function private.set_updated_at();

create table deck.generation_cards (
  generation_id uuid not null references deck.generations (id) on delete cascade,
  position int not null check (position between 0 and 199),
  org_id uuid not null references public.orgs (id) on delete cascade,
  card_id text not null check (card_id ~ '^[A-Za-z0-9_-]{1,64}$'),
  layout text check (layout in ('title', 'bullets', 'text', 'image', 'two_column', 'quote', 'stats', 'timeline', 'closing')),
  wants_image boolean not null default false,
  example jsonb check (example is null or (jsonb_typeof(example) = 'object' and octet_length(example::text) <= 65536)),
  image_prompt text check (char_length(image_prompt) <= 4000),
  content jsonb check (content is null or jsonb_typeof(content) = 'object'),
  content_source text check (content_source in ('model', 'repaired', 'fallback', 'template')),
  image_status text not null default 'none' check (image_status in ('none', 'pending', 'done', 'failed')),
  asset_id uuid references content.assets (id) on delete set null,
  image_alt text check (char_length(image_alt) <= 300),
  image_error text check (char_length(image_error) <= 500),
  broadcast_at timestamptz,
  updated_at timestamptz not null default now(),
  primary key (generation_id, position),
  unique (generation_id, card_id)
);
create index generation_cards_org_idx on deck.generation_cards (org_id);
create index generation_cards_asset_idx on deck.generation_cards (asset_id);
comment on table deck.generation_cards is 'A generation''s cards as its stages make them: the layout and image prompt (structure), the content (validated by the layout''s schema) and the image (a content asset of the deck). A resumed run skips what is here.';
comment on column deck.generation_cards.card_id is 'The card''s stable id in the deck body.';
comment on column deck.generation_cards.wants_image is 'Whether the card gets an image (decided at admission, so images_total and the reservation are known at once).';
comment on column deck.generation_cards.example is 'From a template: that card''s layout and data, copied at admission (when the caller''s right to copy the template was checked), so the worker never reads the template itself.';
comment on column deck.generation_cards.content is 'The card''s data, valid for its layout; null until the content stage writes it.';
comment on column deck.generation_cards.content_source is 'model: the first answer was valid; repaired: the second (repair) answer was; fallback: built from the outline (not charged); template: adapted from a template card.';
comment on column deck.generation_cards.image_status is 'none (no image), pending, done (asset_id set) or failed (not charged).';
create trigger generation_cards_updated_at before update on deck.generation_cards for each row execute function private.set_updated_at();

comment on column deck.generation_cards.broadcast_at is 'When deck.card went out for it: cards are announced in order, each once.';

alter table deck.templates add column generation_id uuid references deck.generations (id) on delete set null;
create index templates_generation_idx on deck.templates (generation_id);
comment on column deck.templates.generation_id is 'The generation that made this template (saveAsTemplate), if one did.';

insert into notify.event_types (type, module, description, sensitive) values
  ('deck.generation_completed', 'deck', 'A deck generation finished: its deck is written and its credits settled', false),
  ('deck.generation_failed', 'deck', 'A deck generation failed; what it did not produce was not charged', false);

-- ---------------------------------------------------------------------------
-- RLS: the creator (member or API key) and the org's billing managers read; writes go through
-- the functions below (the api as the caller, the worker as service).
-- ---------------------------------------------------------------------------

alter table deck.generations enable row level security;
alter table deck.generation_cards enable row level security;
revoke all on deck.generations, deck.generation_cards from anon, authenticated;
grant all on deck.generations, deck.generation_cards to service_role;
grant select on deck.generations, deck.generation_cards to authenticated;
create policy "creators and billing managers read generations" on deck.generations
  for select to authenticated
  using (
    (user_id = (select auth.uid()) and org_id in (select private.accessible_org_ids()))
    or (api_key_id is not null and api_key_id = (select private.api_key_id()))
    or org_id in (select private.org_ids_with_permission('billing.manage'))
  );
create policy "readers of a generation read its cards" on deck.generation_cards
  for select to authenticated
  using (generation_id in (select g.id from deck.generations g));

-- ---------------------------------------------------------------------------
-- Progress and broadcasts
-- ---------------------------------------------------------------------------

create or replace function private.deck_progress(g deck.generations) returns int
language sql immutable
set search_path = ''
as $$
  select case
    when g.status = 'completed' or g.stage = 'done' then 100
    when g.stage in ('queued', 'outline') then 2
    when g.stage = 'outline_ready' then 10
    when g.stage = 'structure' then 12
    else 15 + floor(80.0 * (g.cards_done + g.images_done + g.images_failed)
                    / greatest(1, g.cards_total + g.images_total))::int
  end
$$;

create or replace function private.deck_topic(g deck.generations) returns text
language sql immutable
set search_path = ''
as $$
  select case when g.user_id is not null then 'user:' || g.user_id else 'org:' || g.org_id end
$$;

-- Keeps progress in step and broadcasts deck.generation when anything a client shows changes.
create or replace function private.deck_generation_progress() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if new.status = 'pending' then
    new.progress := greatest(coalesce(old.progress, 0), private.deck_progress(new));
  elsif new.status = 'completed' then
    new.progress := 100;
  end if;
  return new;
end
$$;
create trigger generations_progress before insert or update on deck.generations
  for each row execute function private.deck_generation_progress();

create or replace function private.deck_broadcast_generation() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  if tg_op = 'UPDATE' and (new.status, new.stage, new.progress, new.cards_done, new.images_done, new.images_failed, new.document_id)
                          is not distinct from (old.status, old.stage, old.progress, old.cards_done, old.images_done, old.images_failed, old.document_id) then
    return null;
  end if;
  perform realtime.send(
    jsonb_build_object('generation_id', new.id, 'deck_id', new.document_id, 'status', new.status, 'stage', new.stage,
                       'progress', new.progress, 'cards_done', new.cards_done, 'cards_total', new.cards_total,
                       'images_done', new.images_done, 'images_failed', new.images_failed, 'error', new.error),
    'deck.generation', private.deck_topic(new), true);
  return null;
end
$$;
create trigger generations_broadcast after insert or update on deck.generations
  for each row execute function private.deck_broadcast_generation();

-- Announces the finished cards not yet announced, in card order, stopping at the first that is
-- not finished (content written and image ended). The caller holds the generation's row lock, so
-- two workers' flushes run one after the other and card k never goes out before card k-1.
create or replace function private.deck_flush_cards(g deck.generations) returns int
language plpgsql security definer
set search_path = ''
as $$
declare
  c deck.generation_cards;
  n int := 0;
begin
  for c in select * from deck.generation_cards where generation_id = g.id and broadcast_at is null order by position loop
    exit when c.content is null or c.image_status = 'pending';
    perform realtime.send(
      jsonb_build_object('generation_id', g.id, 'deck_id', g.document_id, 'position', c.position,
                         'card', jsonb_build_object('id', c.card_id, 'layout', c.layout, 'data', c.content,
                                                    'image', case when c.asset_id is not null then jsonb_build_object('asset_id', c.asset_id, 'alt', coalesce(c.image_alt, '')) end,
                                                    'notes', '')),
      'deck.card', private.deck_topic(g), true);
    update deck.generation_cards set broadcast_at = now() where generation_id = g.id and position = c.position;
    n := n + 1;
  end loop;
  return n;
end
$$;

-- ---------------------------------------------------------------------------
-- Admission (the api, as the caller, in the POST's transaction)
-- ---------------------------------------------------------------------------

-- Checks the caller, prices the deck from deck.prices, reserves it whole (cards and images apart)
-- and records the generation and its cards (ids, which get an image). PT402 when the org has too
-- few credits: the caller's transaction (and the deck it made) rolls back with nothing held.
create or replace function private.deck_start_generation(
  p_org_id uuid, p_user_id uuid, p_api_key_id uuid, p_document_id uuid, p_source text, p_template_id uuid,
  p_params jsonb, p_cards jsonb, p_image_tier text, p_idempotency_key text, p_export_format text, p_hold_outline boolean,
  p_ai_tiers text[], p_template jsonb default null)
returns deck.generations
language plpgsql security definer
set search_path = ''
as $$
declare
  v_role text := coalesce(auth.role(), 'service_role');
  v_id uuid := gen_random_uuid();
  v_price_card bigint;
  v_price_image bigint := 0;
  v_cards int := jsonb_array_length(p_cards);
  v_images int;
  v_g deck.generations;
  v_allowed text[];
  v_tier text;
begin
  if v_role <> 'service_role' then
    if p_api_key_id is distinct from private.api_key_id() or (p_api_key_id is null and p_user_id is distinct from auth.uid()) then
      raise exception 'a generation is started as the caller' using errcode = '42501';
    end if;
    if not private.has_permission(p_org_id, 'ai.use') then
      raise exception 'you need ai.use in this org to generate decks' using errcode = '42501';
    end if;
    if not private.has_permission(p_org_id, 'content.write') then
      raise exception 'you need content.write in this org to generate decks' using errcode = '42501';
    end if;
  end if;
  -- The gateway tiers its calls will run at must be open to the org now (its AI policy, its plan):
  -- better refused here than charged for a deck whose every image would be refused later.
  select p.allowed_tiers into v_allowed from ai.org_policies p where p.org_id = p_org_id;
  foreach v_tier in array coalesce(p_ai_tiers, '{}') loop
    if v_tier <> all (coalesce(v_allowed, array['economy', 'balanced', 'premium'])) then
      raise exception 'the % AI tier this deck needs is not allowed by this org''s AI policy', v_tier using errcode = '42501';
    end if;
    if v_tier = 'premium' and not coalesce((select e.enabled from billing.entitlements e
                                             where e.plan_key = billing.current_plan(p_org_id) and e.key = 'ai_premium_tier'), false) then
      raise exception 'premium images are not included in this plan' using errcode = 'PT402';
    end if;
  end loop;
  if v_cards is null or v_cards not between 1 and 200 then
    raise exception 'a generation makes 1 to 200 cards' using errcode = '22023';
  end if;
  if not exists (select 1 from content.documents d where d.id = p_document_id and d.org_id = p_org_id and d.kind = 'deck') then
    raise exception 'deck not found in this org' using errcode = 'PT404';
  end if;
  select count(*) into v_images from jsonb_array_elements(p_cards) c where (c ->> 'wants_image')::boolean;
  select credits into v_price_card from deck.prices where key = 'card';
  if p_image_tier is not null then
    select credits into v_price_image from deck.prices where key = 'image:' || p_image_tier;
  end if;
  if v_price_card is null or v_price_image is null then
    raise exception 'deck prices are not configured' using errcode = '22023';
  end if;
  if p_image_tier is null then
    v_images := 0;
  end if;

  insert into deck.generations (id, org_id, user_id, api_key_id, document_id, source, template_id, params, idempotency_key,
                                num_cards, image_tier, price_card, price_image, credits_reserved, cards_total, images_total,
                                export_format, hold_outline)
  values (v_id, p_org_id, p_user_id, p_api_key_id, p_document_id, p_source, p_template_id, p_params, p_idempotency_key,
          v_cards, p_image_tier, v_price_card, v_price_image, v_cards * v_price_card + v_images * v_price_image, v_cards, v_images,
          p_export_format, coalesce(p_hold_outline, false))
  returning * into v_g;
  insert into deck.generation_cards (generation_id, position, org_id, card_id, layout, example, wants_image, image_status)
  select v_id, (c.ord - 1)::int, p_org_id, c.value ->> 'card_id', c.value ->> 'layout', c.value -> 'example',
         p_image_tier is not null and (c.value ->> 'wants_image')::boolean,
         case when p_image_tier is not null and (c.value ->> 'wants_image')::boolean then 'pending' else 'none' end
  from jsonb_array_elements(p_cards) with ordinality c(value, ord);

  if p_template is not null then
    insert into deck.templates (document_id, org_id, category, locale, status, prompt, prompt_hash, batch_key, generation_id)
    values (p_document_id, p_org_id, p_template ->> 'category', coalesce(p_template ->> 'locale', 'en'), 'review',
            left(coalesce(p_template ->> 'prompt', ''), 4000), coalesce(p_template ->> 'prompt_hash', ''),
            p_template ->> 'batch_key', v_id);
  end if;

  -- The reservations last a day at most (the ledger's cap). A generation runs in seconds; one held
  -- at its outline longer is reserved again when approved (deck_approve_outline).
  if v_cards * v_price_card > 0 then
    v_g.cards_reservation_id := (billing.reserve_credits(p_org_id, v_cards * v_price_card, 'deck-gen:' || v_id || ':cards',
                                                         interval '1 day', 'deck.generation:' || v_id)).id;
  end if;
  if v_images * v_price_image > 0 then
    v_g.images_reservation_id := (billing.reserve_credits(p_org_id, v_images * v_price_image, 'deck-gen:' || v_id || ':images',
                                                          interval '1 day', 'deck.generation:' || v_id)).id;
  end if;
  update deck.generations set cards_reservation_id = v_g.cards_reservation_id, images_reservation_id = v_g.images_reservation_id
   where id = v_id
  returning * into v_g;
  return v_g;
end
$$;

-- ---------------------------------------------------------------------------
-- The worker's steps (service role)
-- ---------------------------------------------------------------------------

-- Settles one stage's reservation with what it produced, once (repeats are no-ops). A lapsed
-- reservation already gave its credits back: nothing is charged for it then.
create or replace function private.deck_settle(p_generation_id uuid, p_what text, p_amount bigint) returns bigint
language plpgsql security definer
set search_path = ''
as $$
declare
  v_g deck.generations;
  v_res uuid;
  v_charge bigint := greatest(0, p_amount);
begin
  select * into v_g from deck.generations where id = p_generation_id for update;
  if (p_what = 'cards' and v_g.cards_settled) or (p_what = 'images' and v_g.images_settled) then
    return 0;
  end if;
  v_res := case p_what when 'cards' then v_g.cards_reservation_id else v_g.images_reservation_id end;
  if v_res is not null then
    if (select r.status from billing.credit_reservations r where r.id = v_res) <> 'pending' then
      v_charge := 0;
    elsif v_charge > 0 then
      perform billing.settle_credits(v_res, v_charge);
    else
      perform billing.void_credits(v_res);
    end if;
  else
    v_charge := 0;
  end if;
  update deck.generations
     set credits_deducted = credits_deducted + v_charge,
         cards_settled = cards_settled or p_what = 'cards',
         images_settled = images_settled or p_what = 'images'
   where id = p_generation_id;
  return v_charge;
end
$$;

create or replace function private.deck_set_stage(p_generation_id uuid, p_stage text) returns deck.generations
language plpgsql security definer
set search_path = ''
as $$
declare
  v_g deck.generations;
begin
  update deck.generations set stage = p_stage where id = p_generation_id and status = 'pending' returning * into v_g;
  return v_g;
end
$$;

-- The outline's artefact; a held generation stops at outline_ready.
create or replace function private.deck_store_outline(p_generation_id uuid, p_outline jsonb) returns deck.generations
language plpgsql security definer
set search_path = ''
as $$
declare
  v_g deck.generations;
begin
  update deck.generations
     set outline = p_outline,
         stage = case when hold_outline and outline_approved_at is null then 'outline_ready' else 'structure' end
   where id = p_generation_id and status = 'pending' and outline is null
  returning * into v_g;
  if not found then
    select * into v_g from deck.generations where id = p_generation_id;
  end if;
  return v_g;
end
$$;

-- The structure's artefact: each card's layout and image prompt.
create or replace function private.deck_store_structure(p_generation_id uuid, p_cards jsonb) returns void
language plpgsql security definer
set search_path = ''
as $$
begin
  update deck.generation_cards c
     set layout = s.value ->> 'layout', image_prompt = s.value ->> 'image_prompt', updated_at = now()
    from jsonb_array_elements(p_cards) with ordinality s(value, ord)
   where c.generation_id = p_generation_id and c.position = (s.ord - 1)::int and c.content is null;
  update deck.generations set stage = 'cards' where id = p_generation_id and status = 'pending' and stage in ('structure', 'queued', 'outline');
end
$$;

-- A card's content (valid for its layout, checked by the worker), once; then the in-order announcements.
create or replace function private.deck_store_card(p_generation_id uuid, p_position int, p_content jsonb, p_source text) returns boolean
language plpgsql security definer
set search_path = ''
as $$
declare
  v_g deck.generations;
begin
  select * into v_g from deck.generations where id = p_generation_id for update;
  if v_g.status <> 'pending' then
    return false;
  end if;
  update deck.generation_cards set content = p_content, content_source = p_source, updated_at = now()
   where generation_id = p_generation_id and position = p_position and content is null;
  if not found then
    return false;
  end if;
  update deck.generations
     set cards_done = cards_done + 1, cards_fallback = cards_fallback + (p_source = 'fallback')::int,
         stage = case when cards_done + 1 >= cards_total and images_done + images_failed < images_total then 'images' else stage end
   where id = p_generation_id
  returning * into v_g;
  -- The card stage is finished: settled now with what it produced (fallback cards are free).
  if v_g.cards_done >= v_g.cards_total then
    perform private.deck_settle(v_g.id, 'cards', (v_g.cards_done - v_g.cards_fallback)::bigint * v_g.price_card);
  end if;
  perform private.deck_flush_cards(v_g);
  return true;
end
$$;

-- An image's end: stored as the deck's asset (done) or failed (not charged).
create or replace function private.deck_store_image(
  p_generation_id uuid, p_position int, p_asset_id uuid, p_alt text, p_error text) returns boolean
language plpgsql security definer
set search_path = ''
as $$
declare
  v_g deck.generations;
begin
  select * into v_g from deck.generations where id = p_generation_id for update;
  if v_g.status <> 'pending' then
    return false;
  end if;
  update deck.generation_cards
     set image_status = case when p_asset_id is not null then 'done' else 'failed' end,
         asset_id = p_asset_id, image_alt = left(p_alt, 300), image_error = left(p_error, 500), updated_at = now()
   where generation_id = p_generation_id and position = p_position and image_status = 'pending';
  if not found then
    return false;
  end if;
  update deck.generations
     set images_done = images_done + (p_asset_id is not null)::int, images_failed = images_failed + (p_asset_id is null)::int
   where id = p_generation_id
  returning * into v_g;
  -- The image stage is finished: settled now with the images made (a failed one is free).
  if v_g.images_done + v_g.images_failed >= v_g.images_total then
    perform private.deck_settle(v_g.id, 'images', v_g.images_done::bigint * v_g.price_image);
  end if;
  perform private.deck_flush_cards(v_g);
  return true;
end
$$;

-- Ends a generation: completed (both stages settled by the worker first), failed or canceled
-- (stages not yet settled are settled with what they produced; the rest is released), once.
create or replace function private.deck_finish_generation(p_generation_id uuid, p_status text, p_error jsonb default null)
returns deck.generations
language plpgsql security definer
set search_path = ''
as $$
declare
  v_g deck.generations;
begin
  if p_status not in ('completed', 'failed', 'canceled') then
    raise exception 'a generation ends completed, failed or canceled' using errcode = '22023';
  end if;
  select * into v_g from deck.generations where id = p_generation_id for update;
  if not found then
    raise exception 'generation not found' using errcode = 'PT404';
  end if;
  if v_g.status <> 'pending' then
    return v_g;
  end if;
  perform private.deck_settle(v_g.id, 'cards', (v_g.cards_done - v_g.cards_fallback)::bigint * v_g.price_card);
  perform private.deck_settle(v_g.id, 'images', v_g.images_done::bigint * v_g.price_image);
  update deck.generations
     set status = p_status, error = p_error, finished_at = now(),
         stage = case when p_status = 'completed' then 'done' else stage end
   where id = p_generation_id
  returning * into v_g;
  perform private.deck_flush_cards(v_g);
  if p_status <> 'completed' then
    -- A template that was never made leaves the review queue (its deck stays, a plain deck): its
    -- batch key and prompt are free again, so a resumed batch makes it anew instead of finding
    -- this failure, and no reviewer has to reject it.
    delete from deck.templates where generation_id = v_g.id and status = 'review';
  end if;
  if p_status <> 'canceled' then
    perform private.emit_event(v_g.org_id,
      case when p_status = 'completed' then 'deck.generation_completed' else 'deck.generation_failed' end,
      'deck_generation', v_g.id::text,
      jsonb_build_object('generation_id', v_g.id, 'deck_id', v_g.document_id, 'user_id', v_g.user_id,
                         'cards', v_g.cards_done, 'images', v_g.images_done, 'images_failed', v_g.images_failed,
                         'credits', v_g.credits_deducted, 'error', v_g.error ->> 'code'));
  end if;
  return v_g;
end
$$;

-- ---------------------------------------------------------------------------
-- The caller's actions (the api, as the caller)
-- ---------------------------------------------------------------------------

-- A generation the caller may act on: its creator (member or API key), or a billing manager of
-- its org for cancel; locked. Anyone else: PT404 (it is not theirs to know about).
create or replace function private.deck_generation_for_caller(p_generation_id uuid, p_managers boolean) returns deck.generations
language plpgsql security definer
set search_path = ''
as $$
declare
  v_g deck.generations;
begin
  select * into v_g from deck.generations where id = p_generation_id for update;
  if not found
     or not (coalesce(auth.role(), 'service_role') = 'service_role'
             or (v_g.user_id = auth.uid() and v_g.org_id in (select private.accessible_org_ids()))
             or (v_g.api_key_id is not null and v_g.api_key_id = private.api_key_id())
             or (p_managers and private.has_permission(v_g.org_id, 'billing.manage'))) then
    raise exception 'generation not found' using errcode = 'PT404';
  end if;
  return v_g;
end
$$;

-- Approves a held outline (edited or as it is): it must be held at outline_ready, else PT409.
create or replace function private.deck_approve_outline(p_generation_id uuid, p_outline jsonb) returns deck.generations
language plpgsql security definer
set search_path = ''
as $$
declare
  v_g deck.generations := private.deck_generation_for_caller(p_generation_id, false);
begin
  if v_g.status <> 'pending' or v_g.stage <> 'outline_ready' or v_g.outline_approved_at is not null then
    raise exception 'this generation is not waiting for its outline (it is % at %)', v_g.status, v_g.stage using errcode = 'PT409';
  end if;
  if p_outline is not null then
    if jsonb_typeof(p_outline -> 'cards') is distinct from 'array' or jsonb_array_length(p_outline -> 'cards') <> v_g.num_cards then
      raise exception 'the outline has exactly % cards (what was reserved)', v_g.num_cards using errcode = '22023';
    end if;
  end if;
  -- A hold may outlast its reservations (a day at most; credits.expire gives lapsed credits back).
  -- The deck is then reserved again before anything is made: a PT402 refuses the approval.
  if v_g.cards_reservation_id is not null
     and (select r.status from billing.credit_reservations r where r.id = v_g.cards_reservation_id) <> 'pending' then
    v_g.cards_reservation_id := (billing.reserve_credits(v_g.org_id, v_g.cards_total::bigint * v_g.price_card,
      'deck-gen:' || v_g.id || ':cards:' || (extract(epoch from clock_timestamp()) * 1000)::bigint, interval '1 day',
      'deck.generation:' || v_g.id)).id;
  end if;
  if v_g.images_reservation_id is not null
     and (select r.status from billing.credit_reservations r where r.id = v_g.images_reservation_id) <> 'pending' then
    v_g.images_reservation_id := (billing.reserve_credits(v_g.org_id, v_g.images_total::bigint * v_g.price_image,
      'deck-gen:' || v_g.id || ':images:' || (extract(epoch from clock_timestamp()) * 1000)::bigint, interval '1 day',
      'deck.generation:' || v_g.id)).id;
  end if;
  update deck.generations
     set outline = coalesce(p_outline, outline), outline_approved_at = now(), stage = 'structure',
         cards_reservation_id = v_g.cards_reservation_id, images_reservation_id = v_g.images_reservation_id
   where id = p_generation_id
  returning * into v_g;
  return v_g;
end
$$;

-- Cancels a pending generation: what is finished is kept and charged, the rest is released.
create or replace function private.deck_cancel_generation(p_generation_id uuid) returns deck.generations
language plpgsql security definer
set search_path = ''
as $$
declare
  v_g deck.generations := private.deck_generation_for_caller(p_generation_id, true);
begin
  if v_g.status <> 'pending' then
    return v_g;
  end if;
  return private.deck_finish_generation(p_generation_id, 'canceled',
    jsonb_build_object('code', 'canceled', 'message', 'canceled; finished cards are kept, unspent credits released'));
end
$$;

revoke all on function private.deck_progress(deck.generations), private.deck_topic(deck.generations),
  private.deck_generation_progress(), private.deck_broadcast_generation(), private.deck_flush_cards(deck.generations),
  private.deck_start_generation(uuid, uuid, uuid, uuid, text, uuid, jsonb, jsonb, text, text, text, boolean, text[], jsonb),
  private.deck_settle(uuid, text, bigint), private.deck_set_stage(uuid, text), private.deck_store_outline(uuid, jsonb),
  private.deck_store_structure(uuid, jsonb), private.deck_store_card(uuid, int, jsonb, text),
  private.deck_store_image(uuid, int, uuid, text, text), private.deck_finish_generation(uuid, text, jsonb),
  private.deck_generation_for_caller(uuid, boolean), private.deck_approve_outline(uuid, jsonb),
  private.deck_cancel_generation(uuid) from public;
grant execute on function private.deck_progress(deck.generations), private.deck_topic(deck.generations) to service_role;
grant execute on function
  private.deck_start_generation(uuid, uuid, uuid, uuid, text, uuid, jsonb, jsonb, text, text, text, boolean, text[], jsonb),
  private.deck_generation_for_caller(uuid, boolean), private.deck_approve_outline(uuid, jsonb),
  private.deck_cancel_generation(uuid)
  to authenticated, service_role;
grant execute on function private.deck_flush_cards(deck.generations), private.deck_settle(uuid, text, bigint),
  private.deck_set_stage(uuid, text), private.deck_store_outline(uuid, jsonb), private.deck_store_structure(uuid, jsonb),
  private.deck_store_card(uuid, int, jsonb, text), private.deck_store_image(uuid, int, uuid, text, text),
  private.deck_finish_generation(uuid, text, jsonb)
  to service_role;
