-- Decks, part 4: analytics. A view of a deck (by a signed-in reader, or anyone holding a share
-- link), the card beacons it sends (how long each card was on screen), and rollups per card and
-- deck revision. Papermark's page_views, made version-aware (a view is pinned to the revision it
-- was served, and a card is counted per revision: a card edited after a view is another card),
-- bot-aware (the User-Agent's verdict is kept on the view and on each of its events, and rollups
-- leave bots out) and exact under retries (an event is unique per view and key, so a batch sent
-- twice counts once).
--
-- Writes come only from the api (service role) after its own checks: the view route checks the
-- reader's access or the link (private.deck_link_view_target), the beacon route the view's
-- owner or the viewer key. Rollups are computed by the worker (deck.analytics_rollup).
--
-- Who reads: members of the deck's org holding content.read, for the decks they can read (the
-- analytics tables' policies ask content.documents' own policy, so a private deck's analytics
-- are its owner's and the org admins'). Nobody else: not another org, not the viewer who sent
-- the beacons, not anon.

-- ---------------------------------------------------------------------------
-- Revisions: the card list of each deck revision a view was served (ids in order, titles and a
-- hash of each card), so beacons are checked against what the viewer saw and rollups place each
-- card without reading old bodies.
-- ---------------------------------------------------------------------------

create table deck.view_revisions (
  document_id uuid not null references content.documents (id) on delete cascade,
  revision int not null check (revision > 0),
  org_id uuid not null references public.orgs (id) on delete cascade,
  card_ids text[] not null check (cardinality(card_ids) <= 200),
  card_titles text[] not null check (cardinality(card_titles) = cardinality(card_ids)),
  card_hashes text[] not null check (cardinality(card_hashes) = cardinality(card_ids)),
  created_at timestamptz not null default now(),
  primary key (document_id, revision)
);
create index view_revisions_org_idx on deck.view_revisions (org_id, document_id);
comment on table deck.view_revisions is 'The cards of each deck revision that was served to a view: ids in order, titles and content hashes. Written once per revision by the api when a view starts; beacons naming a card not in their revision are refused.';
comment on column deck.view_revisions.card_ids is 'Card ids in the order the deck showed them at this revision (position = index, from 0).';
comment on column deck.view_revisions.card_titles is 'Each card''s title at this revision (what the analytics name a card).';
comment on column deck.view_revisions.card_hashes is 'sha256 of each card''s JSON at this revision: the same hash in two revisions is the same card content, so a client may merge an unchanged card''s rollups across revisions.';

-- ---------------------------------------------------------------------------
-- Views
-- ---------------------------------------------------------------------------

create table deck.views (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null references public.orgs (id) on delete cascade,
  document_id uuid not null references content.documents (id) on delete cascade,
  revision int not null check (revision > 0),
  source text not null check (source in ('member', 'link')),
  share_id uuid references content.shares (id) on delete set null,
  user_id uuid references auth.users (id) on delete set null,
  viewer_key text not null check (viewer_key ~ '^(u:[0-9a-f-]{36}|k:[0-9a-f]{64})$'),
  bot boolean not null,
  user_agent text check (char_length(user_agent) <= 512),
  referrer text check (char_length(referrer) <= 512),
  started_at timestamptz not null default now(),
  last_seen_at timestamptz not null default now(),
  foreign key (document_id, revision) references deck.view_revisions (document_id, revision),
  check (source = 'member' or user_id is null),
  check (source = 'link' or share_id is null)
);
create index views_org_idx on deck.views (org_id, document_id, started_at desc);
create index views_document_idx on deck.views (document_id, revision);
create index views_share_idx on deck.views (share_id);
create index views_user_idx on deck.views (user_id);
create index views_last_seen_idx on deck.views (last_seen_at);
comment on table deck.views is 'One viewing of a deck: by a signed-in reader (source member) or through a share link (source link, anyone). Pinned to the revision it was served; a client that shows another revision starts a new view. Written by the api only.';
comment on column deck.views.revision is 'The deck revision this view was served; its beacons must name it.';
comment on column deck.views.share_id is 'The content link the view came through (source link); never the link''s token.';
comment on column deck.views.viewer_key is 'Who viewed, for unique viewers: u:<user id> for a signed-in reader, k:<sha256 of the key the client keeps> for a link viewer (the key itself is never stored: it authenticates the view''s beacons).';
comment on column deck.views.bot is 'The User-Agent looked like a bot (isbot), or there was none. Bot views and their events are kept, flagged, and left out of rollups.';
comment on column deck.views.user_agent is 'The User-Agent the view started with (first 512 characters).';
comment on column deck.views.referrer is 'The Referer header the view started with (first 512 characters), if any.';
comment on column deck.views.last_seen_at is 'When the view last sent beacons that added events (the rollup job recomputes decks seen since their last rollup).';

-- ---------------------------------------------------------------------------
-- Card events: append-only, unique per view and key.
-- ---------------------------------------------------------------------------

create table deck.card_events (
  id bigint generated always as identity primary key,
  org_id uuid not null references public.orgs (id) on delete cascade,
  view_id uuid not null references deck.views (id) on delete cascade,
  document_id uuid not null references content.documents (id) on delete cascade,
  revision int not null check (revision > 0),
  card_id text not null check (card_id ~ '^[A-Za-z0-9_-]{1,64}$'),
  position int not null check (position between 0 and 199),
  duration_ms int not null check (duration_ms between 0 and 1800000),
  seq int check (seq between 0 and 1000000000),
  event_key text not null check (char_length(event_key) between 1 and 120),
  bot boolean not null,
  ts timestamptz not null,
  received_at timestamptz not null default now()
);
create unique index card_events_view_key_idx on deck.card_events (view_id, event_key);
create index card_events_org_idx on deck.card_events (org_id, document_id, revision);
create index card_events_document_idx on deck.card_events (document_id, view_id);
comment on table deck.card_events is 'Card beacons: how long a card of a deck revision was on screen in one view. Append-only (updates, deletes and truncates are refused; only cascades from the deck, view or org remove rows). A resent beacon (same view and event key) inserts nothing.';
comment on column deck.card_events.position is 'The card''s index in its revision (from deck.view_revisions).';
comment on column deck.card_events.duration_ms is 'Dwell time on the card, 0 to 30 minutes.';
comment on column deck.card_events.seq is 'The client''s sequence number for the event within its view, if it sent one.';
comment on column deck.card_events.event_key is 'What makes a beacon unique within its view: s:<seq> when the client numbers its events, otherwise c:<card id>@<ts in ms>.';
comment on column deck.card_events.bot is 'The view''s bot flag, copied onto each event.';
comment on column deck.card_events.ts is 'When the client says the dwell ended (checked against the view''s start and the server''s clock).';
comment on column deck.card_events.received_at is 'When the api stored the event.';

-- Append-only like the audit log and the credits journal, with their guard. Its message now
-- names the table it guards (it was written for the audit log alone; the journal reuses it).
create or replace function private.audit_log_is_append_only() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  -- The foreign keys' cascades (an org, deck or view deleted) run nested in their RI triggers.
  if tg_op <> 'TRUNCATE' and pg_trigger_depth() > 1 then
    return coalesce(new, old);
  end if;
  raise exception '%.% is append-only', tg_table_schema, tg_table_name using errcode = '42501';
end
$$;
revoke all on function private.audit_log_is_append_only() from public;
comment on function private.audit_log_is_append_only() is 'Trigger guard of every append-only table (notify.audit_log, billing.credit_entries, deck.card_events): refuses update, delete and truncate from every role; only foreign-key cascades (nested in their RI triggers) pass.';
create trigger card_events_append_only before update or delete on deck.card_events
  for each row execute function private.audit_log_is_append_only();
create trigger card_events_no_truncate before truncate on deck.card_events
  for each statement execute function private.audit_log_is_append_only();

-- ---------------------------------------------------------------------------
-- Rollups (the worker's deck.analytics_rollup; bots left out)
-- ---------------------------------------------------------------------------

create table deck.card_rollups (
  document_id uuid not null references content.documents (id) on delete cascade,
  revision int not null check (revision > 0),
  card_id text not null,
  org_id uuid not null references public.orgs (id) on delete cascade,
  position int not null,
  card_title text not null default '',
  card_hash text not null default '',
  views int not null check (views >= 0),
  unique_viewers int not null check (unique_viewers >= 0),
  median_ms int not null check (median_ms >= 0),
  p90_ms int not null check (p90_ms >= 0),
  total_ms bigint not null check (total_ms >= 0),
  drop_off numeric(5, 4) not null check (drop_off between 0 and 1),
  computed_at timestamptz not null default now(),
  primary key (document_id, revision, card_id)
);
create index card_rollups_org_idx on deck.card_rollups (org_id, document_id, revision, position);
comment on table deck.card_rollups is 'Per card and deck revision, over the views that reached the card (bots left out): views, unique viewers, median and p90 dwell, and drop-off. Recomputed whole per deck by deck.analytics_rollup.';
comment on column deck.card_rollups.views is 'Non-bot views of this revision with at least one beacon on this card.';
comment on column deck.card_rollups.unique_viewers is 'Distinct viewer keys among those views.';
comment on column deck.card_rollups.median_ms is 'Median over those views of the time each spent on the card (a view''s beacons on one card summed), rounded.';
comment on column deck.card_rollups.p90_ms is '90th percentile of the same, rounded.';
comment on column deck.card_rollups.total_ms is 'Total time all those views spent on the card.';
comment on column deck.card_rollups.drop_off is 'Share of those views for which this card was the furthest they reached (the last card''s is everyone who reached it).';

create table deck.revision_rollups (
  document_id uuid not null references content.documents (id) on delete cascade,
  revision int not null check (revision > 0),
  org_id uuid not null references public.orgs (id) on delete cascade,
  card_count int not null check (card_count >= 0),
  views int not null check (views >= 0),
  unique_viewers int not null check (unique_viewers >= 0),
  bot_views int not null check (bot_views >= 0),
  completion numeric(5, 4) not null check (completion between 0 and 1),
  completed_views int not null check (completed_views >= 0),
  median_total_ms int not null check (median_total_ms >= 0),
  first_view_at timestamptz,
  last_view_at timestamptz,
  computed_at timestamptz not null default now(),
  primary key (document_id, revision)
);
create index revision_rollups_org_idx on deck.revision_rollups (org_id, document_id, revision);
comment on table deck.revision_rollups is 'A deck revision''s summary (bots left out, but counted apart): views, unique viewers, average completion, views that reached the last card, median time per view. Recomputed whole per deck by deck.analytics_rollup; its computed_at is the deck''s rollup watermark.';
comment on column deck.revision_rollups.bot_views is 'Views flagged as bots (left out of every other figure).';
comment on column deck.revision_rollups.completion is 'Average over non-bot views of (furthest card reached + 1) / card count; a view with no beacon counts 0.';
comment on column deck.revision_rollups.completed_views is 'Non-bot views that reached the last card.';
comment on column deck.revision_rollups.median_total_ms is 'Median over non-bot views of their total time on the deck (views without beacons count 0), rounded.';

-- ---------------------------------------------------------------------------
-- Access: readers of the deck in its org; writes only from the api and the worker.
-- ---------------------------------------------------------------------------

do $$
declare
  t text;
begin
  foreach t in array array['view_revisions', 'views', 'card_events', 'card_rollups', 'revision_rollups'] loop
    execute format('alter table deck.%I enable row level security', t);
    execute format('revoke all on deck.%I from anon, authenticated', t);
    execute format('grant all on deck.%I to service_role', t);
    execute format('grant select on deck.%I to authenticated', t);
    -- content.documents' own policy decides "can read the deck" (a private deck: its owner and
    -- the org's admins), evaluated as the caller.
    execute format($p$create policy "readers of the deck in its org read its analytics" on deck.%I
      for select to authenticated
      using (org_id = any ((select private.org_ids_with_permission_array('content.read'))::uuid[])
             and exists (select 1 from content.documents d where d.id = %I.document_id))$p$, t, t);
  end loop;
end
$$;
grant usage, select on sequence deck.card_events_id_seq to service_role;

-- ---------------------------------------------------------------------------
-- The api's link check for a view: the content engine's own (expiry, revocation, password with
-- its lockout), then the deck. Commits in every case; the status says what happened.
-- ---------------------------------------------------------------------------

create or replace function private.deck_link_view_target(p_token text, p_password text)
returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_check record;
  v_doc record;
begin
  select * into v_check from private.content_check_link(p_token, p_password);
  if v_check.status <> 'ok' then
    return jsonb_build_object('status', v_check.status);
  end if;
  select d.id, d.org_id, d.kind into v_doc
  from content.shares s join content.documents d on d.id = s.document_id
  where s.id = v_check.share_id;
  if v_doc.kind is distinct from 'deck' then
    return jsonb_build_object('status', 'not_a_deck');
  end if;
  return jsonb_build_object('status', 'ok', 'share_id', v_check.share_id, 'document_id', v_doc.id, 'org_id', v_doc.org_id);
end
$$;
revoke all on function private.deck_link_view_target(text, text) from public;
grant execute on function private.deck_link_view_target(text, text) to service_role;
comment on function private.deck_link_view_target(text, text) is 'For the api''s POST /deck/views with a link: checks the token and password as the content links do (counting wrong passwords) and answers the linked deck, or the refusal''s status.';

-- ---------------------------------------------------------------------------
-- The rollup: one deck, whole, in one statement per table (set-based; idempotent).
-- ---------------------------------------------------------------------------

create or replace function private.deck_rollup_document(p_document_id uuid)
returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_cards int;
  v_revisions int;
begin
  -- One rollup of a deck at a time: a second waits and then recomputes from what it sees.
  perform pg_advisory_xact_lock(hashtextextended('deck.rollup:' || p_document_id::text, 0));
  delete from deck.card_rollups where document_id = p_document_id;
  delete from deck.revision_rollups where document_id = p_document_id;

  -- Per view and card: the time spent on it (its beacons summed); bot views' events carry bot.
  with dwell as (
    select e.view_id, v.viewer_key, e.revision, e.card_id, e.position, sum(e.duration_ms)::bigint as ms
    from deck.card_events e join deck.views v on v.id = e.view_id
    where e.document_id = p_document_id and not e.bot
    group by e.view_id, v.viewer_key, e.revision, e.card_id, e.position
  ), furthest as (
    select view_id, max(position) as furthest from dwell group by view_id
  ), agg as (
    -- Narrow rows only: the revision's card list is joined after aggregating.
    select d.revision, d.card_id, d.position, count(*) as views, count(distinct d.viewer_key) as unique_viewers,
           percentile_cont(0.5) within group (order by d.ms) as p50, percentile_cont(0.9) within group (order by d.ms) as p90,
           sum(d.ms) as total, avg((d.position = f.furthest)::int) as drop_off
    from dwell d join furthest f on f.view_id = d.view_id
    group by d.revision, d.card_id, d.position
  )
  insert into deck.card_rollups (document_id, revision, card_id, org_id, position, card_title, card_hash, views, unique_viewers,
                                 median_ms, p90_ms, total_ms, drop_off)
  select p_document_id, a.revision, a.card_id, r.org_id, a.position,
         coalesce(r.card_titles[a.position + 1], ''), coalesce(r.card_hashes[a.position + 1], ''),
         a.views, a.unique_viewers, round(a.p50), round(a.p90), a.total, round(a.drop_off, 4)
  from agg a
  join deck.view_revisions r on r.document_id = p_document_id and r.revision = a.revision;
  get diagnostics v_cards = row_count;

  with per_view as (
    select e.view_id, max(e.position) as furthest, sum(e.duration_ms)::bigint as total
    from deck.card_events e
    where e.document_id = p_document_id and not e.bot
    group by e.view_id
  ), per_revision_view as (
    select v.revision, r.org_id, cardinality(r.card_ids) as card_count, v.viewer_key, v.bot, v.started_at, v.last_seen_at,
           p.furthest, coalesce(p.total, 0) as total
    from deck.views v
    join deck.view_revisions r on r.document_id = v.document_id and r.revision = v.revision
    left join per_view p on p.view_id = v.id
    where v.document_id = p_document_id
  )
  insert into deck.revision_rollups (document_id, revision, org_id, card_count, views, unique_viewers, bot_views, completion,
                                     completed_views, median_total_ms, first_view_at, last_view_at)
  select p_document_id, x.revision, x.org_id, x.card_count,
         count(*) filter (where not x.bot), count(distinct x.viewer_key) filter (where not x.bot), count(*) filter (where x.bot),
         coalesce(round(avg(case when x.card_count = 0 then 0
                                 else coalesce(x.furthest + 1, 0)::numeric / x.card_count end) filter (where not x.bot), 4), 0),
         count(*) filter (where not x.bot and x.furthest = x.card_count - 1),
         coalesce(round(percentile_cont(0.5) within group (order by x.total) filter (where not x.bot)), 0),
         min(x.started_at) filter (where not x.bot), max(x.last_seen_at) filter (where not x.bot)
  from per_revision_view x
  group by x.revision, x.org_id, x.card_count;
  get diagnostics v_revisions = row_count;

  return jsonb_build_object('document_id', p_document_id, 'revisions', v_revisions, 'cards', v_cards);
end
$$;
revoke all on function private.deck_rollup_document(uuid) from public;
grant execute on function private.deck_rollup_document(uuid) to service_role;
comment on function private.deck_rollup_document(uuid) is 'Recomputes one deck''s card and revision rollups from its views and events (bots left out), replacing the old rows in the same transaction.';

-- Decks seen since their last rollup (a 2-minute overlap catches beacons that committed after a
-- rollup had begun but carry an earlier time), among views active in the last day.
create or replace function private.deck_rollup_due(p_limit int default 500)
returns setof uuid
language sql stable security definer
set search_path = ''
as $$
  select v.document_id
  from deck.views v
  where v.last_seen_at > now() - interval '1 day'
  group by v.document_id
  having max(v.last_seen_at) > coalesce((select max(r.computed_at) from deck.revision_rollups r where r.document_id = v.document_id),
                                        '-infinity'::timestamptz) - interval '2 minutes'
  order by max(v.last_seen_at)
  limit greatest(1, least(coalesce(p_limit, 500), 5000))
$$;
revoke all on function private.deck_rollup_due(int) from public;
grant execute on function private.deck_rollup_due(int) to service_role;
comment on function private.deck_rollup_due(int) is 'The decks the scheduled rollup recomputes: viewed in the last day and seen since (or within 2 minutes before) their last rollup.';
