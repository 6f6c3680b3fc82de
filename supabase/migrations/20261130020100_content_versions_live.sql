-- Content engine, part 2: versions, and live co-editing with Yjs, Postgres first.
--
-- The live path: a client batches Yjs updates (~100 ms) and inserts them into
-- content.doc_updates (content.push_updates, or a plain insert: RLS lets only editors). A BEFORE
-- trigger stamps the batch with the document's next revision under the document's row lock, so
-- revisions commit in order; an AFTER trigger broadcasts it on doc:<id>. Realtime reads
-- realtime.messages through logical replication, so a client receives a batch only after it
-- committed: every delivered update is durable.
-- Late joiners subscribe to doc:<id> first, then load the Yjs state and every remaining batch
-- (content.load_live); applying a batch twice is harmless.
-- The worker compacts the log into content.live_states (functions/_shared/content/compaction.ts):
-- it merges what it read, refuses a state whose state vector does not dominate the stored one,
-- and deletes exactly the batch ids it merged, never a range.
-- Body writes (saves, restores, versions, publishing) go through the api, which applies the
-- kind's zod schema and, for live documents, turns a new body into a Yjs update. The private
-- functions below are what it calls; they keep the invariants.

-- ---------------------------------------------------------------------------
-- Live state and the update log
-- ---------------------------------------------------------------------------

create table content.live_states (
  document_id uuid primary key references content.documents (id) on delete cascade,
  org_id uuid not null references public.orgs (id) on delete cascade,
  ystate bytea not null,
  ystate_sv bytea not null,
  epoch int not null default 0,
  compacted_at timestamptz,
  created_at timestamptz not null default now()
);
create index live_states_org_id_idx on content.live_states (org_id);
comment on table content.live_states is 'The compacted Yjs state of a live document (Y.encodeStateAsUpdate, gc on). Seeded once by the server from the body; rewritten only by compaction. Clients read it through content.load_live.';
comment on column content.live_states.ystate_sv is 'State vector of ystate: compaction never stores a state that does not dominate it.';
comment on column content.live_states.epoch is 'Bumped by each compaction; a compaction that read an older epoch does not write.';

create table content.doc_updates (
  id bigint generated always as identity primary key,
  org_id uuid not null references public.orgs (id) on delete cascade,
  document_id uuid not null references content.documents (id) on delete cascade,
  revision int not null,
  updates bytea[] not null,
  byte_size int not null,
  author_id uuid references auth.users (id) on delete set null,
  created_at timestamptz not null default now()
);
create index doc_updates_org_id_idx on content.doc_updates (org_id);
create index doc_updates_document_idx on content.doc_updates (document_id, id);
create index doc_updates_author_idx on content.doc_updates (author_id);
create index doc_updates_created_idx on content.doc_updates (created_at);
comment on table content.doc_updates is 'The live update log: batches of Yjs updates not yet compacted. Editors append (content.push_updates); each batch is broadcast on doc:<id> after it commits; compaction deletes exactly the ids it merged.';
comment on column content.doc_updates.revision is 'The document revision this batch made (documents.revision after it).';
comment on column content.doc_updates.updates is 'Yjs updates (v1 encoding) in the order the client made them.';

-- Stamps a batch: size cap, the document's next revision (row lock: revisions commit in order),
-- the author; wakes the compaction pump. Security definer: clients may not update documents.
create or replace function private.content_stamp_update() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  v_bytes int;
  v_doc record;
begin
  if new.updates is null or cardinality(new.updates) not between 1 and 100
     or exists (select 1 from unnest(new.updates) u where u is null or octet_length(u) = 0) then
    raise exception 'a batch holds 1 to 100 non-empty Yjs updates' using errcode = '22023';
  end if;
  select sum(octet_length(u))::int into v_bytes from unnest(new.updates) u;
  if v_bytes > 131072 then
    raise exception 'a batch of live updates holds at most 128 KiB (this one has % bytes): send it in parts', v_bytes
      using errcode = '22023';
  end if;
  if not exists (select 1 from content.live_states s where s.document_id = new.document_id) then
    raise exception 'this document is not live yet: open it with POST /api/content/documents/%/live first, which seeds it once',
      new.document_id using errcode = 'PT409';
  end if;
  update content.documents d
     set revision = d.revision + 1, pending_updates = d.pending_updates + 1, last_edit_at = now()
   where d.id = new.document_id
  returning d.revision, d.org_id, d.pending_updates into v_doc;
  if v_doc.pending_updates > 5000 then
    raise exception 'this document''s update log is full until compaction catches up; retry in a few seconds'
      using errcode = 'PT429', hint = 'retry_after=5';
  end if;
  new.org_id := v_doc.org_id;
  new.revision := v_doc.revision;
  new.byte_size := v_bytes;
  new.author_id := (select auth.uid());
  new.created_at := now();
  perform pg_notify('plinth_content', new.document_id::text || ':' || v_doc.pending_updates::text);
  return new;
end
$$;
revoke all on function private.content_stamp_update() from public;
create trigger doc_updates_stamp before insert on content.doc_updates
  for each row execute function private.content_stamp_update();

create or replace function private.content_b64(p_bytes bytea) returns text
language sql immutable
set search_path = ''
as $$
  select translate(encode(p_bytes, 'base64'), E'\n', '')
$$;
revoke all on function private.content_b64(bytea) from public;
grant execute on function private.content_b64(bytea) to authenticated, service_role;

-- Broadcast after the batch is in: Realtime delivers it only once this transaction commits.
create or replace function private.content_broadcast_update() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  perform realtime.send(
    jsonb_build_object('update_id', new.id, 'revision', new.revision, 'author_id', new.author_id,
                       'updates', (select jsonb_agg(private.content_b64(u) order by o) from unnest(new.updates) with ordinality x (u, o))),
    'update', 'doc:' || new.document_id::text, true);
  return null;
end
$$;
revoke all on function private.content_broadcast_update() from public;
create trigger doc_updates_broadcast after insert on content.doc_updates
  for each row execute function private.content_broadcast_update();

alter table content.live_states enable row level security;
alter table content.doc_updates enable row level security;
revoke all on content.live_states, content.doc_updates from anon, authenticated;
grant all on content.live_states, content.doc_updates to service_role;
grant select on content.doc_updates to authenticated;
grant insert (document_id, updates) on content.doc_updates to authenticated;

create policy "readers of a document read its update log" on content.doc_updates
  for select to authenticated
  using (exists (select 1 from content.documents d where d.id = doc_updates.document_id));
create policy "editors append to a document's update log" on content.doc_updates
  for insert to authenticated
  with check (private.content_level(document_id) >= 3);

-- ---------------------------------------------------------------------------
-- Realtime topics: doc:<id> carries live updates and revokes (sent by the database only),
-- doc:<id>:cursor carries awareness and presence, which every reader may send.
-- ---------------------------------------------------------------------------

create or replace function private.content_topic_document_id(p_topic text) returns uuid
language sql immutable
set search_path = ''
as $$
  select case when p_topic ~ '^doc:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}(:cursor)?$'
              then substr(p_topic, 5, 36)::uuid end
$$;
revoke all on function private.content_topic_document_id(text) from public;
grant execute on function private.content_topic_document_id(text) to authenticated;

-- Row-independent: evaluated once per authorization check.
create or replace function private.content_topic_level(p_topic text) returns int
language plpgsql stable security definer
set search_path = ''
as $$
declare
  v_doc uuid := private.content_topic_document_id(p_topic);
begin
  if v_doc is null then
    return 0;
  end if;
  return private.content_level(v_doc);
end
$$;
revoke all on function private.content_topic_level(text) from public;
grant execute on function private.content_topic_level(text) to authenticated;

create policy "readers receive a document's live channels" on realtime.messages
  for select to authenticated
  using (
    extension in ('broadcast', 'presence')
    and (select realtime.topic()) like 'doc:%'
    and (select private.content_topic_level((select realtime.topic()))) >= 1
  );
-- No INSERT policy for doc:<id> itself: an update a client broadcast directly would skip the log.
create policy "readers send cursors and presence on a doc cursor channel" on realtime.messages
  for insert to authenticated
  with check (
    extension in ('broadcast', 'presence')
    and (select realtime.topic()) like 'doc:%:cursor'
    and (select private.content_topic_level((select realtime.topic()))) >= 1
  );

-- ---------------------------------------------------------------------------
-- Versions
-- ---------------------------------------------------------------------------

create table content.versions (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null references public.orgs (id) on delete cascade,
  document_id uuid not null references content.documents (id) on delete cascade,
  number int not null,
  revision int not null,
  reason text not null check (reason in ('save', 'auto', 'publish', 'before_ai_rewrite', 'before_import', 'restore')),
  message text check (char_length(message) between 1 and 500),
  title text not null,
  body jsonb not null,
  ystate bytea,
  pinned boolean not null default false,
  restored_from uuid references content.versions (id) on delete set null,
  created_by uuid references auth.users (id) on delete set null,
  created_at timestamptz not null default now(),
  unique (document_id, number)
);
create index versions_org_id_idx on content.versions (org_id, created_at);
create index versions_document_idx on content.versions (document_id, number desc);
create index versions_created_by_idx on content.versions (created_by);
create index versions_restored_from_idx on content.versions (restored_from);
comment on table content.versions is 'Append-only full copies of a document: title, body and (for live documents) the Yjs state. Made on an explicit save with a message, after a quiet period when something changed, and always before an AI rewrite, a publish or an import. Unpinned ones older than the plan''s content_version_days are pruned.';
comment on column content.versions.number is 'Per-document sequence: 1, 2, 3, …';
comment on column content.versions.revision is 'The document revision this copy is of.';
comment on column content.versions.reason is 'save (explicit, with a message), auto (quiet period), publish, before_ai_rewrite, before_import, restore (the forward change a restore made).';
comment on column content.versions.ystate is 'Full Yjs state at that revision (live documents); restoring turns the body into a forward Yjs update, so history is never rewritten.';
comment on column content.versions.pinned is 'Kept forever, whatever the plan''s retention (at most 200 per document).';

alter table content.versions enable row level security;
revoke all on content.versions from anon, authenticated;
grant all on content.versions to service_role;
grant select on content.versions to authenticated;
create policy "readers of a document read its versions" on content.versions
  for select to authenticated
  using (exists (select 1 from content.documents d where d.id = versions.document_id));

-- Retention per plan (days; null = unlimited). Pinned versions and each document's newest are kept.
insert into billing.entitlements (plan_key, key, enabled, limit_value, description)
select p.key, 'content_version_days', true, v.days, 'Days unpinned document versions are kept'
from billing.plans p
join (values ('free', 7), ('pro', 30), ('team', 90)) v (plan, days) on v.plan = p.key
on conflict do nothing;

-- ---------------------------------------------------------------------------
-- Writes the api makes (as the caller; private, so PostgREST never reaches them)
-- ---------------------------------------------------------------------------

create or replace function private.content_create_document(
  p_org_id uuid, p_kind text, p_title text, p_body jsonb, p_search_text text, p_tags text[], p_visibility text,
  p_status text, p_ystate bytea, p_ystate_sv bytea, p_is_template boolean, p_template_category text, p_template_locale text)
returns content.documents
language plpgsql security definer
set search_path = ''
as $$
declare
  v_doc content.documents;
begin
  if p_org_id is null or not exists (select 1 from public.orgs o where o.id = p_org_id and o.id in (select private.member_org_ids())) then
    raise exception 'org not found' using errcode = 'PT404';
  end if;
  if not private.has_permission(p_org_id, 'content.write') then
    raise exception 'missing permission content.write in this org' using errcode = '42501';
  end if;
  if not exists (select 1 from content.kinds k where k.kind = p_kind) then
    raise exception 'unknown document kind "%"', p_kind using errcode = '22023';
  end if;
  if (p_ystate is null) <> (p_ystate_sv is null) then
    raise exception 'a live state needs its state vector' using errcode = '22023';
  end if;
  insert into content.documents (org_id, kind, title, body, search_text, tags, visibility, status, owner_id, created_by,
                                 is_template, template_category, template_locale, published_at)
  values (p_org_id, p_kind, coalesce(btrim(p_title), ''), coalesce(p_body, '{}'), coalesce(p_search_text, ''),
          coalesce(p_tags, '{}'), coalesce(p_visibility, 'org'), coalesce(p_status, 'draft'), (select auth.uid()),
          (select u.id from auth.users u where u.id = (select auth.uid())),
          coalesce(p_is_template, false), p_template_category, p_template_locale,
          case when p_status = 'published' then now() end)
  returning * into v_doc;
  if p_ystate is not null then
    insert into content.live_states (document_id, org_id, ystate, ystate_sv) values (v_doc.id, p_org_id, p_ystate, p_ystate_sv);
  end if;
  perform private.emit_event(p_org_id, 'content.document_created', 'document', v_doc.id::text,
    jsonb_build_object('document_id', v_doc.id, 'kind', v_doc.kind, 'visibility', v_doc.visibility));
  return v_doc;
end
$$;

-- The api's body writes lock the document first, then read it: live updates wait for the few
-- milliseconds the api needs, so what it computes against is what it writes on.
create or replace function private.content_lock_document(p_document_id uuid) returns void
language plpgsql security definer
set search_path = ''
as $$
begin
  perform private.content_require(p_document_id, 3);
  perform 1 from content.documents d where d.id = p_document_id for update;
end
$$;

-- Seeds a document's live state once, from its body as the server converted it. A second seeder
-- (or a body that changed since it was read) changes nothing: the caller reloads.
create or replace function private.content_seed(p_document_id uuid, p_revision int, p_ystate bytea, p_ystate_sv bytea)
returns boolean
language plpgsql security definer
set search_path = ''
as $$
declare
  v_org uuid := private.content_require(p_document_id, 1);
  v_seeded int;
begin
  if p_ystate is null or p_ystate_sv is null then
    raise exception 'a seed needs a state and its state vector' using errcode = '22023';
  end if;
  perform 1 from content.documents d where d.id = p_document_id and d.revision = p_revision for update;
  if not found then
    return false;
  end if;
  insert into content.live_states (document_id, org_id, ystate, ystate_sv) values (p_document_id, v_org, p_ystate, p_ystate_sv)
  on conflict (document_id) do nothing;
  get diagnostics v_seeded = row_count;
  return v_seeded = 1;
end
$$;

-- A version of the document as the api read it at p_revision (a live document's state merged by
-- the api). Editors only; numbering under the document's row lock.
create or replace function private.content_add_version(
  p_document_id uuid, p_revision int, p_title text, p_body jsonb, p_ystate bytea, p_reason text, p_message text,
  p_pinned boolean, p_restored_from uuid)
returns content.versions
language plpgsql security definer
set search_path = ''
as $$
declare
  v_org uuid := private.content_require(p_document_id, 3);
  v_doc record;
  v_live boolean;
  v_version content.versions;
begin
  if p_reason is null or p_reason not in ('save', 'auto', 'publish', 'before_ai_rewrite', 'before_import', 'restore') then
    raise exception 'unknown version reason "%"', p_reason using errcode = '22023';
  end if;
  if p_reason = 'save' and p_message is null then
    raise exception 'a saved version needs a message' using errcode = '22023';
  end if;
  select d.revision, d.version_count into v_doc from content.documents d where d.id = p_document_id for update;
  if p_revision is null or p_revision > v_doc.revision or p_revision < 1 then
    raise exception 'revision % is not a revision of this document (it is at %)', p_revision, v_doc.revision using errcode = '22023';
  end if;
  v_live := exists (select 1 from content.live_states s where s.document_id = p_document_id);
  if v_live <> (p_ystate is not null) then
    raise exception '%', case when v_live then 'a version of a live document carries its Yjs state'
                              else 'this document is not live: a version carries no Yjs state' end using errcode = '22023';
  end if;
  if p_restored_from is not null and not exists (select 1 from content.versions v where v.id = p_restored_from and v.document_id = p_document_id) then
    raise exception 'version not found' using errcode = 'PT404';
  end if;
  if coalesce(p_pinned, false) and (select count(*) from content.versions v where v.document_id = p_document_id and v.pinned) >= 200 then
    raise exception 'a document keeps at most 200 pinned versions; unpin one first' using errcode = '22023';
  end if;
  insert into content.versions (org_id, document_id, number, revision, reason, message, title, body, ystate, pinned, restored_from, created_by)
  values (v_org, p_document_id, v_doc.version_count + 1, p_revision, p_reason, p_message, coalesce(p_title, ''), p_body, p_ystate,
          coalesce(p_pinned, false), p_restored_from, (select u.id from auth.users u where u.id = (select auth.uid())))
  returning * into v_version;
  update content.documents d
     set version_count = d.version_count + 1, last_version_revision = greatest(d.last_version_revision, p_revision)
   where d.id = p_document_id;
  return v_version;
end
$$;

-- A body change: a save, a restore, an import or an AI rewrite. The caller names the revision it
-- read; anything else is PT409 (the api answers 409 with the latest body). A live document
-- changes through the Yjs update the api computed against that revision, which goes into the
-- log (and out to every client) like any other batch. An import or AI rewrite needs a version
-- of the revision it replaces (the api makes it first, in the same transaction).
create or replace function private.content_write(
  p_document_id uuid, p_base_revision int, p_title text, p_body jsonb, p_search_text text, p_update bytea, p_reason text)
returns int
language plpgsql security definer
set search_path = ''
as $$
declare
  v_doc record;
  v_live boolean;
  v_revision int;
begin
  perform private.content_require(p_document_id, 3);
  if p_reason is null or p_reason not in ('save', 'restore', 'import', 'ai_rewrite') then
    raise exception 'unknown change reason "%"', p_reason using errcode = '22023';
  end if;
  if p_body is null then
    raise exception 'a body is required' using errcode = '22023';
  end if;
  select d.revision, d.last_version_revision into v_doc from content.documents d where d.id = p_document_id for update;
  if v_doc.revision <> p_base_revision then
    raise exception 'the document changed since revision %: it is at revision % now', p_base_revision, v_doc.revision
      using errcode = 'PT409', hint = 'revision=' || v_doc.revision;
  end if;
  if p_reason in ('import', 'ai_rewrite') and v_doc.last_version_revision <> p_base_revision then
    raise exception 'an % replaces revision %: make a version of it first', replace(p_reason, '_', ' '), p_base_revision
      using errcode = '22023';
  end if;
  v_live := exists (select 1 from content.live_states s where s.document_id = p_document_id);
  if v_live and p_update is null then
    raise exception 'a live document changes through a Yjs update' using errcode = '22023';
  elsif not v_live and p_update is not null then
    raise exception 'this document is not live: send its body only' using errcode = '22023';
  end if;
  if v_live then
    insert into content.doc_updates (document_id, updates) values (p_document_id, array[p_update]) returning revision into v_revision;
    update content.documents d
       set body = p_body, search_text = coalesce(p_search_text, ''), body_revision = v_revision,
           title = coalesce(btrim(p_title), d.title)
     where d.id = p_document_id;
  else
    update content.documents d
       set body = p_body, search_text = coalesce(p_search_text, ''), revision = d.revision + 1, body_revision = d.revision + 1,
           title = coalesce(btrim(p_title), d.title), last_edit_at = now()
     where d.id = p_document_id
    returning d.revision into v_revision;
  end if;
  return v_revision;
end
$$;

-- Status changes. Publishing needs a version of the current revision (the api makes it first).
create or replace function private.content_set_status(p_document_id uuid, p_status text)
returns content.documents
language plpgsql security definer
set search_path = ''
as $$
declare
  v_org uuid := private.content_require(p_document_id, 3);
  v_doc content.documents;
begin
  if p_status is null or p_status not in ('draft', 'published', 'archived') then
    raise exception 'status is draft, published or archived' using errcode = '22023';
  end if;
  select * into v_doc from content.documents d where d.id = p_document_id for update;
  if p_status = 'published' and v_doc.status <> 'published' and v_doc.last_version_revision <> v_doc.revision then
    raise exception 'publishing needs a version of revision % first', v_doc.revision using errcode = '22023';
  end if;
  update content.documents d set status = p_status where d.id = p_document_id returning * into v_doc;
  if p_status = 'published' then
    perform private.emit_event(v_org, 'content.document_published', 'document', p_document_id::text,
      jsonb_build_object('document_id', p_document_id, 'kind', v_doc.kind, 'visibility', v_doc.visibility));
  end if;
  return v_doc;
end
$$;

revoke all on function private.content_create_document(uuid, text, text, jsonb, text, text[], text, text, bytea, bytea, boolean, text, text),
  private.content_lock_document(uuid), private.content_seed(uuid, int, bytea, bytea),
  private.content_add_version(uuid, int, text, jsonb, bytea, text, text, boolean, uuid),
  private.content_write(uuid, int, text, jsonb, text, bytea, text),
  private.content_set_status(uuid, text) from public;
grant execute on function private.content_create_document(uuid, text, text, jsonb, text, text[], text, text, bytea, bytea, boolean, text, text),
  private.content_lock_document(uuid), private.content_seed(uuid, int, bytea, bytea),
  private.content_add_version(uuid, int, text, jsonb, bytea, text, text, boolean, uuid),
  private.content_write(uuid, int, text, jsonb, text, bytea, text),
  private.content_set_status(uuid, text) to authenticated, service_role;

-- ---------------------------------------------------------------------------
-- RPCs for clients (PostgREST)
-- ---------------------------------------------------------------------------

-- Appends a batch (base64 Yjs updates) to the log as the caller: RLS on doc_updates decides.
create or replace function content.push_updates(p_document_id uuid, p_updates text[])
returns table (update_id bigint, revision int)
language plpgsql
set search_path = ''
as $$
declare
  v_bytes bytea[];
begin
  begin
    v_bytes := array(select decode(u, 'base64') from unnest(p_updates) with ordinality x (u, o) order by o);
  exception when others then
    raise exception 'p_updates must be base64-encoded Yjs updates' using errcode = '22023';
  end;
  if not exists (select 1 from content.documents d where d.id = p_document_id) then
    raise exception 'document not found' using errcode = 'PT404';
  end if;
  return query insert into content.doc_updates as u (document_id, updates) values (p_document_id, v_bytes)
    returning u.id, u.revision;
end
$$;
comment on function content.push_updates(uuid, text[]) is 'Appends a batch of Yjs updates (base64, at most 128 KiB) to a live document and broadcasts it on doc:<id> once committed. Editors only (RLS).';

-- What a late joiner applies after subscribing to doc:<id>: the state and every batch after it.
create or replace function content.load_live(p_document_id uuid)
returns jsonb
language plpgsql stable security definer
set search_path = ''
as $$
declare
  v_a record;
begin
  select * into v_a from private.content_access(p_document_id);
  if v_a.level = 0 then
    raise exception 'document not found' using errcode = 'PT404';
  end if;
  return (
    select jsonb_build_object(
      'document_id', d.id,
      'revision', d.revision,
      'level', case v_a.level when 3 then 'edit' when 2 then 'comment' else 'view' end,
      'ystate', private.content_b64(s.ystate),
      'updates', coalesce((select jsonb_agg(jsonb_build_object(
                             'update_id', u.id, 'revision', u.revision,
                             'updates', (select jsonb_agg(private.content_b64(x) order by o) from unnest(u.updates) with ordinality t (x, o)))
                           order by u.id)
                           from content.doc_updates u where u.document_id = d.id), '[]'::jsonb))
    from content.documents d
    left join content.live_states s on s.document_id = d.id
    where d.id = p_document_id);
end
$$;
comment on function content.load_live(uuid) is 'A live document''s Yjs state (base64; null until the server seeds it through the api) and every update batch after it, with the revision and the caller''s level. Subscribe to doc:<id> before calling it.';

-- Pinned versions outlive the plan's retention (at most 200 per document).
create or replace function content.pin_version(p_version_id uuid, p_pinned boolean default true)
returns content.versions
language plpgsql security definer
set search_path = ''
as $$
declare
  v_version content.versions;
begin
  select * into v_version from content.versions v where v.id = p_version_id;
  if not found or coalesce(private.content_level(v_version.document_id), 0) = 0 then
    raise exception 'version not found' using errcode = 'PT404';
  end if;
  perform private.content_require(v_version.document_id, 3);
  if p_pinned is null then
    raise exception 'p_pinned must be true or false' using errcode = '22023';
  end if;
  perform 1 from content.documents d where d.id = v_version.document_id for update;
  if p_pinned and not v_version.pinned
     and (select count(*) from content.versions v where v.document_id = v_version.document_id and v.pinned) >= 200 then
    raise exception 'a document keeps at most 200 pinned versions; unpin one first' using errcode = '22023';
  end if;
  update content.versions v set pinned = p_pinned where v.id = p_version_id returning * into v_version;
  return v_version;
end
$$;
comment on function content.pin_version(uuid, boolean) is 'Pins (or unpins) a version, so the plan''s retention never removes it. Editors; at most 200 pinned per document.';

revoke all on function content.push_updates(uuid, text[]), content.load_live(uuid), content.pin_version(uuid, boolean) from public, anon;
grant execute on function content.push_updates(uuid, text[]), content.load_live(uuid), content.pin_version(uuid, boolean) to authenticated, service_role;

-- ---------------------------------------------------------------------------
-- What the worker calls (service role)
-- ---------------------------------------------------------------------------

-- Stores a compaction. The worker read the log and the state at p_epoch in one snapshot,
-- merged them and checked the state vector; here, under the document's row lock, the epoch
-- proves nobody stored another state since, and exactly the merged ids go.
create or replace function private.content_store_compaction(
  p_document_id uuid, p_epoch int, p_ystate bytea, p_ystate_sv bytea, p_body jsonb, p_search_text text,
  p_body_revision int, p_merged_ids bigint[], p_anchors jsonb)
returns int
language plpgsql security definer
set search_path = ''
as $$
declare
  v_deleted int;
begin
  perform 1 from content.documents d where d.id = p_document_id for update;
  if not found then
    return 0;
  end if;
  update content.live_states s
     set ystate = p_ystate, ystate_sv = p_ystate_sv, epoch = s.epoch + 1, compacted_at = now()
   where s.document_id = p_document_id and s.epoch = p_epoch;
  if not found then
    raise exception 'the live state moved past epoch % while compacting', p_epoch using errcode = '40001';
  end if;
  delete from content.doc_updates u where u.document_id = p_document_id and u.id = any (p_merged_ids);
  get diagnostics v_deleted = row_count;
  update content.documents d
     set body = coalesce(p_body, d.body),
         search_text = case when p_body is null then d.search_text else coalesce(p_search_text, '') end,
         body_revision = case when p_body is null then d.body_revision else greatest(d.body_revision, p_body_revision) end,
         pending_updates = greatest(0, d.pending_updates - v_deleted)
   where d.id = p_document_id;
  update content.comment_threads t
     set anchor_status = a.status, anchor_text = a.text, anchor_checked_at = now(),
         -- Positions re-encoded at surviving characters: later garbage collection cannot orphan them.
         anchor = case when a.rel_start is not null and a.rel_end is not null
                       then t.anchor || jsonb_build_object('rel_start', a.rel_start, 'rel_end', a.rel_end) else t.anchor end
    from jsonb_to_recordset(coalesce(p_anchors, '[]'::jsonb)) a (thread_id uuid, status text, text text, rel_start text, rel_end text)
   where t.id = a.thread_id and t.document_id = p_document_id;
  return v_deleted;
end
$$;

-- Documents whose log has waited longer than p_age (a lost wake-up, or a worker without the pump).
create or replace function private.content_stale_logs(p_age interval, p_limit int default 500)
returns setof uuid
language sql stable security definer
set search_path = ''
as $$
  select u.document_id from content.doc_updates u
  where u.created_at < now() - p_age
  group by u.document_id
  order by min(u.created_at)
  limit p_limit
$$;

-- Automatic versions: documents quiet for p_quiet whose content moved past their newest version
-- and whose log is compacted. Unchanged bodies only move the marker.
create or replace function private.content_auto_versions(p_quiet interval, p_limit int default 1000)
returns int
language plpgsql security definer
set search_path = ''
as $$
declare
  v_made int;
begin
  with due as (
    select d.id, d.org_id, d.revision, d.title, d.body, d.version_count, s.ystate,
           (select v.body from content.versions v where v.document_id = d.id order by v.number desc limit 1) as last_body
    from content.documents d
    left join content.live_states s on s.document_id = d.id
    where d.updated_at > now() - interval '7 days' and d.updated_at < now() - p_quiet
      and d.last_edit_at < now() - p_quiet
      and d.revision > d.last_version_revision and d.pending_updates = 0
    order by d.updated_at
    limit p_limit
    for update of d skip locked
  ), made as (
    insert into content.versions (org_id, document_id, number, revision, reason, title, body, ystate)
    select due.org_id, due.id, due.version_count + 1, due.revision, 'auto', due.title, due.body, due.ystate
    from due where due.last_body is distinct from due.body
    returning document_id
  ), marked as (
    update content.documents d
       set last_version_revision = due.revision,
           version_count = d.version_count + (case when due.id in (select m.document_id from made m) then 1 else 0 end)
      from due where d.id = due.id
    returning d.id
  )
  select count(*) into v_made from made;
  return v_made;
end
$$;

-- Retention: unpinned versions older than the org's plan allows go; each document's newest stays.
create or replace function private.content_prune_versions(p_limit int default 10000)
returns int
language plpgsql security definer
set search_path = ''
as $$
declare
  v_pruned int;
begin
  with orgs as (
    select o.org_id, billing.limit_of(o.org_id, 'content_version_days') as days
    from (select distinct v.org_id from content.versions v where not v.pinned and v.created_at < now() - interval '1 day') o
  ), doomed as (
    select v.id from content.versions v
    join orgs on orgs.org_id = v.org_id
    where not v.pinned and orgs.days is not null and v.created_at < now() - make_interval(days => orgs.days::int)
      and v.number < (select max(x.number) from content.versions x where x.document_id = v.document_id)
    limit p_limit
  )
  delete from content.versions v using doomed where v.id = doomed.id;
  get diagnostics v_pruned = row_count;
  return v_pruned;
end
$$;

revoke all on function private.content_store_compaction(uuid, int, bytea, bytea, jsonb, text, int, bigint[], jsonb),
  private.content_stale_logs(interval, int), private.content_auto_versions(interval, int), private.content_prune_versions(int)
  from public;
grant execute on function private.content_store_compaction(uuid, int, bytea, bytea, jsonb, text, int, bigint[], jsonb),
  private.content_stale_logs(interval, int), private.content_auto_versions(interval, int), private.content_prune_versions(int)
  to service_role;
