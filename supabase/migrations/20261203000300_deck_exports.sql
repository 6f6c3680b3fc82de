-- Decks, exports: a deck's PPTX, PDF or HTML file, rendered by the worker (deck.export) and kept
-- in the private deck-exports bucket for a week behind signed URLs. An export is keyed by
-- (deck, revision, format): asking again returns the same row and, once stored, the same file; a
-- failed or expired one is reset and rendered again. The api and server code ask through
-- private.deck_request_export (functions/_shared/deck/exports/request.ts), never PostgREST:
-- the deck's body at that revision is copied into the row in the same transaction.

-- Export files: no org folder and no storage policy, so only the service role (the worker, the
-- api's signed URLs) reaches them. Paths: <org>/<document>/<revision>/<export id>-<render>.<ext>.
insert into storage.buckets (id, name, public, file_size_limit)
values ('deck-exports', 'deck-exports', false, null)
on conflict (id) do nothing;

create table deck.exports (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null references public.orgs (id) on delete cascade,
  document_id uuid not null references content.documents (id) on delete cascade,
  revision int not null check (revision > 0),
  format text not null check (format in ('pptx', 'pdf', 'html')),
  status text not null default 'queued' check (status in ('queued', 'rendering', 'stored', 'failed', 'expired')),
  title text not null default '' check (char_length(title) <= 300),
  body jsonb check (body is null or (jsonb_typeof(body) = 'object' and octet_length(body::text) <= 1048576)),
  renders int not null default 0 check (renders >= 0),
  storage_path text check (char_length(storage_path) <= 400),
  bytes bigint check (bytes >= 0),
  sha256 text check (sha256 ~ '^[0-9a-f]{64}$'),
  pages int check (pages >= 0),
  expires_at timestamptz,
  error_code text check (char_length(error_code) <= 60),
  error text check (char_length(error) <= 1000),
  requested_by uuid references auth.users (id) on delete set null,
  api_key_id uuid references public.api_keys (id) on delete set null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  finished_at timestamptz,
  unique (document_id, revision, format),
  constraint stored_exports_have_a_file check (status <> 'stored' or (storage_path is not null and bytes is not null and sha256 is not null and expires_at is not null))
);
create index exports_org_idx on deck.exports (org_id, created_at desc);
create index exports_requested_by_idx on deck.exports (requested_by);
create index exports_api_key_idx on deck.exports (api_key_id);
-- The retention job's two passes: stored files past their expiry, and files left behind by
-- expired or failed rows.
create index exports_expiry_idx on deck.exports (expires_at) where status = 'stored';
create index exports_leftover_idx on deck.exports (updated_at) where status in ('expired', 'failed') and storage_path is not null;

comment on table deck.exports is 'A deck''s export file (PPTX, PDF or HTML) at one revision: one row per (deck, revision, format), rendered once by the worker (deck.export) and kept for 7 days in the private deck-exports bucket; asking again reuses it (and extends its expiry). Readers: whoever may view and download the deck. Progress goes to the requester on user:<id> (event deck.export).';
comment on column deck.exports.revision is 'The deck''s revision the file shows (content.documents.revision when asked).';
comment on column deck.exports.status is 'queued, rendering, stored (the file is there until expires_at), failed (error_code, error; asking again retries), expired (the retention job removed the file; asking again renders it anew).';
comment on column deck.exports.title is 'The deck''s title at that revision (the download''s file name).';
comment on column deck.exports.body is 'The deck''s body at that revision, copied when a render is queued so live edits meanwhile change nothing; cleared once rendered.';
comment on column deck.exports.renders is 'How many renders were started; part of the file''s path, so a re-render never overwrites a file the retention job may be removing.';
comment on column deck.exports.storage_path is 'The object in the deck-exports bucket: <org>/<document>/<revision>/<export id>-<render>.<ext>. Served by signed URL only (GET /api/deck/exports/{id}).';
comment on column deck.exports.sha256 is 'Hex SHA-256 of the stored file.';
comment on column deck.exports.pages is 'Slides (PPTX), pages (PDF) or cards (HTML): one per card.';
comment on column deck.exports.expires_at is 'When the file is removed (7 days after it was stored or last asked for).';
comment on column deck.exports.error_code is 'Why the last render failed: chromium_missing, invalid_deck, render_failed, storage_failed.';
comment on column deck.exports.requested_by is 'The member who last asked for a render; they get its progress on user:<id>.';
comment on column deck.exports.api_key_id is 'The org API key that asked, when one did.';

create trigger exports_updated_at before update on deck.exports for each row execute function private.set_updated_at();

-- ---------------------------------------------------------------------------
-- Who may read and ask: the deck's viewers who may also download it (content_access.can_copy:
-- members of its org, share grantees whose share allows downloads; not a public reader).
-- ---------------------------------------------------------------------------

create or replace function private.deck_can_export(p_document_id uuid) returns boolean
language plpgsql stable security definer
set search_path = ''
as $$
declare
  v_a record;
begin
  select * into v_a from private.content_access(p_document_id);
  return coalesce(v_a.level, 0) >= 1 and coalesce(v_a.can_copy, false);
end
$$;
revoke all on function private.deck_can_export(uuid) from public;
grant execute on function private.deck_can_export(uuid) to authenticated, service_role;

alter table deck.exports enable row level security;
revoke all on deck.exports from anon, authenticated;
grant all on deck.exports to service_role;
-- Not the body snapshot (the deck's readers read it from the deck itself). The path alone opens
-- nothing: the bucket has no policy, so files are reached by signed URL only.
grant select (id, org_id, document_id, revision, format, status, title, renders, storage_path, pages, bytes, sha256, expires_at,
              error_code, error, requested_by, api_key_id, created_at, updated_at, finished_at) on deck.exports to authenticated;
-- Writes go through private.deck_request_export (the api) and the worker.
create policy "readers who may download a deck read its exports" on deck.exports
  for select to authenticated
  using (private.deck_can_export(document_id));

-- ---------------------------------------------------------------------------
-- Asking for an export (the api and server code; not exposed to PostgREST)
-- ---------------------------------------------------------------------------

/*
 * Creates or reuses the export of (document, revision, format) as the caller: a user, an API key
 * (from the request's claims), or the service role on behalf of p_user_id. Returns
 * {export_id, status, reused, render}; when render is true the caller copies the body in
 * (private.deck_export_snapshot) and queues deck.export in the same transaction.
 */
create or replace function private.deck_request_export(
  p_document_id uuid, p_revision int, p_format text, p_user_id uuid default null, p_api_key_id uuid default null)
returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_claims jsonb := coalesce(nullif(current_setting('request.jwt.claims', true), ''), '{}')::jsonb;
  -- Never null: claims without a role are a caller like any other, and every check applies.
  v_service boolean := coalesce(v_claims ->> 'role' = 'service_role', false);
  v_user uuid;
  v_key uuid;
  v_doc record;
  v_e deck.exports;
begin
  if v_service then
    v_user := p_user_id;
    v_key := p_api_key_id;
  else
    v_user := nullif(v_claims ->> 'sub', '')::uuid;
    v_key := nullif(v_claims ->> 'api_key_id', '')::uuid;
    if (p_user_id is not null and p_user_id is distinct from v_user) or (p_api_key_id is not null and p_api_key_id is distinct from v_key) then
      raise exception 'an export is asked for as yourself' using errcode = '42501';
    end if;
  end if;
  if p_format is null or p_format not in ('pptx', 'pdf', 'html') then
    raise exception 'format is pptx, pdf or html' using errcode = '22023';
  end if;
  if p_revision is null or p_revision < 1 then
    raise exception 'revision is a positive integer' using errcode = '22023';
  end if;
  select d.org_id, d.kind, d.revision into v_doc from content.documents d where d.id = p_document_id;
  if not found or v_doc.kind <> 'deck' or (not v_service and not exists (
    select 1 from private.content_access(p_document_id) a where a.level >= 1)) then
    raise exception 'deck not found' using errcode = 'PT404';
  end if;
  if not v_service and not private.deck_can_export(p_document_id) then
    raise exception 'you may view this deck but not download it: ask its owner for a share that allows downloads' using errcode = '42501';
  end if;
  if p_revision > v_doc.revision then
    raise exception 'revision % of this deck does not exist: it is at revision %', p_revision, v_doc.revision using errcode = 'PT404';
  end if;

  insert into deck.exports (org_id, document_id, revision, format, requested_by, api_key_id)
  values (v_doc.org_id, p_document_id, p_revision, p_format, v_user, v_key)
  on conflict (document_id, revision, format) do nothing
  returning * into v_e;
  if found then
    perform private.deck_require_copy(p_document_id, p_revision, v_doc.revision);
    return jsonb_build_object('export_id', v_e.id, 'status', v_e.status, 'reused', false, 'render', true);
  end if;

  select * into v_e from deck.exports e
  where e.document_id = p_document_id and e.revision = p_revision and e.format = p_format
  for update;
  if v_e.status in ('queued', 'rendering') then
    return jsonb_build_object('export_id', v_e.id, 'status', v_e.status, 'reused', true, 'render', false);
  end if;
  if v_e.status = 'stored' and v_e.expires_at > now() then
    -- Asked for again: the same file, kept a week from now.
    update deck.exports e set expires_at = greatest(e.expires_at, now() + interval '7 days') where e.id = v_e.id;
    return jsonb_build_object('export_id', v_e.id, 'status', v_e.status, 'reused', true, 'render', false);
  end if;
  -- Failed, expired (or stored but past its expiry, before the retention job ran): render again.
  -- The old file's path stays until the new one is stored; the worker or the retention job removes it.
  perform private.deck_require_copy(p_document_id, p_revision, v_doc.revision);
  update deck.exports e
  set status = 'queued', error_code = null, error = null, finished_at = null, body = null,
      requested_by = v_user, api_key_id = v_key
  where e.id = v_e.id;
  return jsonb_build_object('export_id', v_e.id, 'status', 'queued', 'reused', false, 'render', true);
end
$$;
revoke all on function private.deck_request_export(uuid, int, text, uuid, uuid) from public;
grant execute on function private.deck_request_export(uuid, int, text, uuid, uuid) to authenticated, service_role;

-- A past revision renders from a kept version of it; without one there is nothing to render.
create or replace function private.deck_require_copy(p_document_id uuid, p_revision int, p_current int) returns void
language plpgsql stable security definer
set search_path = ''
as $$
begin
  if p_revision < p_current and not exists (
    select 1 from content.versions v where v.document_id = p_document_id and v.revision = p_revision) then
    raise exception 'no copy of revision % of this deck is kept: export the current revision (%)', p_revision, p_current
      using errcode = 'PT404';
  end if;
end
$$;
revoke all on function private.deck_require_copy(uuid, int, int) from public;
grant execute on function private.deck_require_copy(uuid, int, int) to authenticated, service_role;

/*
 * Copies the deck's body at the export's revision into a queued export (the step after
 * deck_request_export said render). Only while queued and empty, and only by someone who may
 * ask for it.
 */
create or replace function private.deck_export_snapshot(p_export_id uuid, p_body jsonb, p_title text)
returns void
language plpgsql security definer
set search_path = ''
as $$
declare
  v_doc uuid;
begin
  select e.document_id into v_doc from deck.exports e where e.id = p_export_id and e.status = 'queued' and e.body is null;
  if v_doc is null then
    raise exception 'export not found or not waiting for its body' using errcode = 'PT409';
  end if;
  if coalesce(current_setting('request.jwt.claims', true)::jsonb ->> 'role', '') <> 'service_role' and not private.deck_can_export(v_doc) then
    raise exception 'deck not found' using errcode = 'PT404';
  end if;
  update deck.exports e set body = p_body, title = left(coalesce(p_title, ''), 300) where e.id = p_export_id;
end
$$;
revoke all on function private.deck_export_snapshot(uuid, jsonb, text) from public;
grant execute on function private.deck_export_snapshot(uuid, jsonb, text) to authenticated, service_role;

-- ---------------------------------------------------------------------------
-- Progress, live to the requester: deck.export on user:<id> at every status change.
-- ---------------------------------------------------------------------------

create or replace function private.deck_export_changed() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  if new.requested_by is null or (tg_op = 'UPDATE' and new.status is not distinct from old.status) then
    return null;
  end if;
  perform realtime.send(jsonb_build_object('export_id', new.id, 'document_id', new.document_id, 'revision', new.revision,
                                           'format', new.format, 'status', new.status, 'pages', new.pages, 'bytes', new.bytes,
                                           'expires_at', new.expires_at, 'error_code', new.error_code, 'error', new.error),
                        'deck.export', 'user:' || new.requested_by, true);
  return null;
end
$$;
revoke all on function private.deck_export_changed() from public;
create trigger exports_changed after insert or update on deck.exports
  for each row execute function private.deck_export_changed();

-- ---------------------------------------------------------------------------
-- Files no export names any more (their deck, or its org, was deleted, and the rows went with
-- it): found by the retention job and removed from Storage. A render writes its file before it
-- records the path, so only files older than p_age are taken.
-- ---------------------------------------------------------------------------

create or replace function private.deck_orphan_export_files(p_age interval, p_limit int default 500)
returns setof text
language sql stable security definer
set search_path = ''
as $$
  select o.name from storage.objects o
  where o.bucket_id = 'deck-exports' and o.created_at < now() - p_age
    and not exists (select 1 from deck.exports e where e.storage_path = o.name)
  order by o.created_at
  limit p_limit
$$;
revoke all on function private.deck_orphan_export_files(interval, int) from public;
grant execute on function private.deck_orphan_export_files(interval, int) to service_role;
