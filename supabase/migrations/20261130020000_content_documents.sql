-- Content engine, part 1: document kinds, documents, shares, and the access helpers that every
-- content policy calls (tables, Realtime topics and Storage objects alike).
--
-- Who may do what with a document, in one place (private.content_level):
--   membership  org members with content.read reach documents whose visibility is org, link or
--               public; private ones only when they own them or hold org.manage. content.write
--               makes that "edit", content.read alone "comment".
--   shares      a user, an org role, or a link redeemed by a signed-in user; level view, comment
--               or edit. A link works only while the document's visibility is link or public.
--   public      any signed-in user views a published public document or a global template;
--               anon reads published public documents (and links only through the api).
-- Levels are ranks: 1 view, 2 comment, 3 edit.

create extension if not exists pg_trgm with schema extensions;

create schema if not exists content;
grant usage on schema content to anon, authenticated, service_role;
comment on schema content is 'Plinth content engine: documents of registered kinds, versions, shares, comments, live co-editing (Yjs), assets and search.';
-- Functions here are reached through PostgREST: none is executable by anyone until granted.
alter default privileges in schema content revoke execute on functions from public;

-- ---------------------------------------------------------------------------
-- Kinds
-- ---------------------------------------------------------------------------

create table content.kinds (
  kind text primary key check (kind ~ '^[a-z][a-z0-9_]{1,39}$'),
  module text not null check (module ~ '^[a-z][a-z0-9_]{1,39}$'),
  description text not null check (char_length(description) between 1 and 300),
  created_at timestamptz not null default now()
);
comment on table content.kinds is 'Document kinds. Each has a zod body schema, text extraction and Yjs mapping registered in functions/_shared/content/kinds; tests check the two lists match. A module adds its kind here in its migration.';

insert into content.kinds (kind, module, description) values
  ('note', 'content', 'Rich text (ProseMirror/Tiptap JSON), co-edited as a Y.XmlFragment'),
  ('checklist', 'content', 'Ordered items with stable ids, each with rich-text label and a done flag: the worked example of a structured kind');

alter table content.kinds enable row level security;
revoke all on content.kinds from anon, authenticated;
grant select on content.kinds to authenticated;
grant all on content.kinds to service_role;
create policy "signed-in users read the kind catalog" on content.kinds for select to authenticated using (true);

-- ---------------------------------------------------------------------------
-- Documents
-- ---------------------------------------------------------------------------

create or replace function private.content_valid_tags(p_tags text[]) returns boolean
language sql immutable
set search_path = ''
as $$
  select cardinality(p_tags) <= 50
     and not exists (select 1 from unnest(p_tags) t where t is null or char_length(t) not between 1 and 50 or t <> btrim(t))
$$;
revoke all on function private.content_valid_tags(text[]) from public;

create table content.documents (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null references public.orgs (id) on delete cascade,
  kind text not null references content.kinds (kind),
  title text not null default '' check (char_length(title) <= 300),
  -- The shape the database can see: an object of at most 1 MiB. The kind's zod schema (applied by
  -- the api and the compaction worker) says the rest.
  body jsonb not null default '{}' check (jsonb_typeof(body) = 'object' and octet_length(body::text) <= 1048576),
  status text not null default 'draft' check (status in ('draft', 'published', 'archived')),
  visibility text not null default 'org' check (visibility in ('private', 'org', 'link', 'public')),
  owner_id uuid references public.profiles (id) on delete set null,
  tags text[] not null default '{}' check (private.content_valid_tags(tags)),
  forked_from uuid references content.documents (id) on delete set null,
  origin text not null default 'new' check (origin in ('new', 'fork', 'template', 'import')),
  is_template boolean not null default false,
  template_scope text not null default 'org' check (template_scope in ('org', 'global')),
  template_category text check (char_length(template_category) between 1 and 60),
  template_locale text check (template_locale ~ '^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$'),
  revision int not null default 1 check (revision > 0),
  body_revision int not null default 1,
  search_text text not null default '',
  search tsvector not null default ''::tsvector,
  pending_updates int not null default 0 check (pending_updates >= 0),
  last_edit_at timestamptz not null default now(),
  version_count int not null default 0,
  last_version_revision int not null default 0,
  published_at timestamptz,
  created_by uuid references auth.users (id) on delete set null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint body_revision_not_ahead check (body_revision <= revision),
  constraint global_templates_are_templates check (template_scope = 'org' or is_template)
);
create index documents_org_updated_idx on content.documents (org_id, updated_at desc);
create index documents_org_kind_idx on content.documents (org_id, kind, updated_at desc);
create index documents_search_idx on content.documents using gin (search);
create index documents_title_trgm_idx on content.documents using gin (title extensions.gin_trgm_ops);
create index documents_owner_idx on content.documents (owner_id);
create index documents_forked_from_idx on content.documents (forked_from);
create index documents_created_by_idx on content.documents (created_by);
create index documents_kind_idx on content.documents (kind);
create index documents_templates_idx on content.documents (template_scope, template_category) where is_template;
-- The quiet-period sweep scans recently changed documents only (updated_at moves at saves and
-- compactions, never per live update, so live editing stays HOT).
create index documents_updated_idx on content.documents (updated_at);

comment on table content.documents is 'Documents of every kind. Body writes go through the api (zod per kind) or live Yjs updates; metadata through content RPCs. RLS: membership by visibility, shares, published public documents.';
comment on column content.documents.kind is 'The registered kind (content.kinds); decides the body schema, search text and Yjs mapping.';
comment on column content.documents.body is 'The document as JSON for its kind. For a live document it is derived from the Yjs state at each compaction (body_revision says how current it is).';
comment on column content.documents.visibility is 'private: owner, shares and org admins; org: members with content.read; link: org plus link shares; public: also anyone once published.';
comment on column content.documents.forked_from is 'The document this one was forked, duplicated or created from (a template).';
comment on column content.documents.origin is 'How it was made: new, fork (fork or duplicate), template (use template), import.';
comment on column content.documents.is_template is 'Listed in the org''s template gallery (and the global one when template_scope = global, which only the service role sets).';
comment on column content.documents.revision is 'Bumped by every body change: a save, a restore, and each batch of live updates. A save names the revision it read; a stale one gets 409.';
comment on column content.documents.body_revision is 'The revision the stored body reflects; below revision while live updates wait for compaction.';
comment on column content.documents.search_text is 'Plain text of the body (the kind''s toText), extracted at save and compaction time.';
comment on column content.documents.search is 'Weighted tsvector: title (A), search_text (B). Kept by trigger.';
comment on column content.documents.pending_updates is 'Live update batches not yet compacted into the Yjs state.';
comment on column content.documents.last_edit_at is 'When the content last changed (live updates included).';
comment on column content.documents.last_version_revision is 'The revision of the newest version; an automatic version is made only when revision has moved past it.';

-- Timestamps and the search vector, each only when what they depend on changed: a live update
-- bumps revision alone and stays a HOT update.
create or replace function private.content_document_derived() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if tg_op = 'INSERT' or new.title is distinct from old.title or new.search_text is distinct from old.search_text then
    new.search := setweight(to_tsvector('english'::regconfig, new.title), 'A')
               || setweight(to_tsvector('english'::regconfig, left(new.search_text, 500000)), 'B');
  end if;
  if tg_op = 'UPDATE' and (new.title, new.body, new.tags, new.status, new.visibility, new.is_template, new.template_scope,
                           new.template_category, new.template_locale, new.owner_id)
       is distinct from (old.title, old.body, old.tags, old.status, old.visibility, old.is_template, old.template_scope,
                         old.template_category, old.template_locale, old.owner_id) then
    new.updated_at := now();
  end if;
  if tg_op = 'UPDATE' and new.status = 'published' and old.status <> 'published' then
    new.published_at := now();
  end if;
  return new;
end
$$;
revoke all on function private.content_document_derived() from public;
create trigger documents_derived before insert or update on content.documents
  for each row execute function private.content_document_derived();

-- ---------------------------------------------------------------------------
-- Shares
-- ---------------------------------------------------------------------------

create table content.shares (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null references public.orgs (id) on delete cascade,
  document_id uuid not null references content.documents (id) on delete cascade,
  grantee_kind text not null check (grantee_kind in ('user', 'role', 'link')),
  grantee_user_id uuid references public.profiles (id) on delete cascade,
  grantee_role text check (grantee_role ~ '^[a-z][a-z0-9_]{1,31}$'),
  level text not null check (level in ('view', 'comment', 'edit')),
  allow_download boolean not null default true,
  template boolean not null default false,
  token_hash bytea unique,
  password_hash text,
  failed_attempts int not null default 0,
  locked_until timestamptz,
  parent_link_id uuid references content.shares (id) on delete cascade,
  expires_at timestamptz,
  revoked_at timestamptz,
  created_by uuid references auth.users (id) on delete set null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint grantee_matches_kind check (
    case grantee_kind
      when 'user' then grantee_user_id is not null and grantee_role is null and token_hash is null and password_hash is null
      when 'role' then grantee_role is not null and grantee_user_id is null and token_hash is null and password_hash is null
                       and parent_link_id is null
      else token_hash is not null and grantee_user_id is null and grantee_role is null and parent_link_id is null
    end),
  constraint template_links_are_view_only check (not template or (grantee_kind = 'link' and level = 'view'))
);
create index shares_org_id_idx on content.shares (org_id, document_id);
create index shares_document_idx on content.shares (document_id);
create index shares_user_idx on content.shares (grantee_user_id) where grantee_kind = 'user';
create index shares_role_idx on content.shares (org_id, grantee_role) where grantee_kind = 'role';
create index shares_parent_idx on content.shares (parent_link_id);
create index shares_created_by_idx on content.shares (created_by);
create unique index shares_one_live_user_grant on content.shares (document_id, grantee_user_id)
  where grantee_kind = 'user' and revoked_at is null;
create unique index shares_one_live_role_grant on content.shares (document_id, grantee_role)
  where grantee_kind = 'role' and revoked_at is null;
comment on table content.shares is 'Who else may reach a document: a user, an org role (in the document''s org), or a link. Written through content RPCs; revoking sends a revoke broadcast on doc:<id>.';
comment on column content.shares.level is 'view, comment or edit.';
comment on column content.shares.allow_download is 'Whether the grantee may download assets and copy (fork) the document.';
comment on column content.shares.template is 'A template link: anyone with it may copy the document into their own org, never edit it (level view).';
comment on column content.shares.token_hash is 'sha256 of a link''s token; the token is shown once, at creation.';
comment on column content.shares.password_hash is 'bcrypt (pgcrypto crypt) of a link''s optional password.';
comment on column content.shares.failed_attempts is 'Wrong link passwords in a row; five lock the link for 15 minutes.';
comment on column content.shares.parent_link_id is 'For a user grant made by redeeming a link: that link. The grant lives only while the link does.';
create trigger shares_updated_at before update on content.shares for each row execute function private.set_updated_at();

-- ---------------------------------------------------------------------------
-- Access helpers
-- ---------------------------------------------------------------------------

create or replace function private.content_level_rank(p_level text) returns int
language sql immutable
set search_path = ''
as $$
  select case p_level when 'edit' then 3 when 'comment' then 2 when 'view' then 1 else 0 end
$$;

-- Live share grants of a user: direct user grants, grants from redeemed links (while the link is
-- live and the document still allows links), and role grants for the roles they hold.
create or replace function private.content_user_grants(p_user_id uuid, p_aal2 boolean)
returns table (document_id uuid, rank int, allow_download boolean)
language plpgsql stable security definer
set search_path = ''
set plan_cache_mode = force_generic_plan
as $$
begin
  return query
    select s.document_id, private.content_level_rank(s.level), s.allow_download
    from content.shares s
    left join content.shares l on l.id = s.parent_link_id
    left join content.documents ld on ld.id = l.document_id
    where s.grantee_kind = 'user' and s.grantee_user_id = p_user_id
      and s.revoked_at is null and (s.expires_at is null or s.expires_at > now())
      and (s.parent_link_id is null
           or (l.revoked_at is null and (l.expires_at is null or l.expires_at > now()) and ld.visibility in ('link', 'public')))
    union all
    select s.document_id, private.content_level_rank(s.level), s.allow_download
    from public.org_members m
    join public.orgs o on o.id = m.org_id
    join content.shares s on s.org_id = m.org_id and s.grantee_kind = 'role' and s.grantee_role = m.role
    where m.user_id = p_user_id and (p_aal2 or not o.require_mfa)
      and s.revoked_at is null and (s.expires_at is null or s.expires_at > now());
end
$$;

-- The membership half of the documents SELECT policy, as one set of keys computed once per
-- statement: (org, false) for every org where the caller holds content.read, which reaches its
-- non-private documents and their own; (org, true) where they also hold org.manage, which
-- reaches everyone's private ones too. One call, claims parsed once (API keys: their org and
-- scopes; MFA: the org's rule), so RLS costs one lookup however many rows a list returns.
-- plan_cache_mode: planned once per session, not per call (a custom plan per call would cost
-- more than the list it guards).
create or replace function private.content_reader_keys() returns table (org_id uuid, others_private boolean)
language plpgsql stable security definer
set search_path = ''
set plan_cache_mode = force_generic_plan
as $$
declare
  v_claims jsonb := coalesce(nullif(current_setting('request.jwt.claims', true), ''), '{}')::jsonb;
  v_key uuid := nullif(v_claims ->> 'api_key_id', '')::uuid;
  v_uid uuid := nullif(v_claims ->> 'sub', '')::uuid;
  v_aal2 boolean := coalesce(v_claims ->> 'aal', 'aal1') = 'aal2';
begin
  if v_key is not null then
    return query
      select k.org_id, f from public.api_keys k, unnest(array[false, true]) f
      where k.id = v_key and k.revoked_at is null and (k.expires_at is null or k.expires_at > now())
        and 'content.read' = any (k.scopes) and (not f or 'org.manage' = any (k.scopes));
    return;
  end if;
  return query
    select m.org_id, f
    from public.org_members m
    join public.orgs o on o.id = m.org_id
    left join public.builtin_roles b on b.key = m.role
    left join public.org_roles r on r.org_id = m.org_id and r.key = m.role
    cross join unnest(array[false, true]) f
    where m.user_id = v_uid
      and (v_aal2 or not o.require_mfa)
      and 'content.read' = any (coalesce(b.permissions, r.permissions))
      and (not f or 'org.manage' = any (coalesce(b.permissions, r.permissions)));
end
$$;

-- Documents shared with the caller (any level): the share half of the documents SELECT policy.
create or replace function private.content_shared_document_ids() returns setof uuid
language plpgsql stable security definer
set search_path = ''
as $$
declare
  v_claims jsonb := coalesce(nullif(current_setting('request.jwt.claims', true), ''), '{}')::jsonb;
  v_uid uuid := nullif(v_claims ->> 'sub', '')::uuid;
begin
  if v_uid is null then
    return;
  end if;
  return query select distinct g.document_id from private.content_user_grants(v_uid, coalesce(v_claims ->> 'aal', 'aal1') = 'aal2') g;
end
$$;

-- A user's level on a document (0 = none), computed for anyone: RLS asks it for the caller,
-- mentions for the person mentioned. API-key callers reach their org's documents like a member
-- without org.manage.
create or replace function private.content_level_for(p_document_id uuid, p_user_id uuid, p_api_key_id uuid, p_aal2 boolean)
returns table (level int, member_level int, can_copy boolean)
language plpgsql stable security definer
set search_path = ''
set plan_cache_mode = force_generic_plan
as $$
declare
  v_doc record;
  v_perms text[];
  v_member int := 0;
  v_share int := 0;
  v_share_copy boolean := false;
begin
  select d.org_id, d.owner_id, d.visibility, d.status, d.is_template, d.template_scope into v_doc
  from content.documents d where d.id = p_document_id;
  if not found then
    return query select 0, 0, false;
    return;
  end if;
  if p_api_key_id is not null then
    select k.scopes into v_perms from public.api_keys k
    where k.id = p_api_key_id and k.org_id = v_doc.org_id and k.revoked_at is null and (k.expires_at is null or k.expires_at > now());
  elsif p_user_id is not null then
    select coalesce(b.permissions, r.permissions) into v_perms
    from public.org_members m
    join public.orgs o on o.id = m.org_id
    left join public.builtin_roles b on b.key = m.role
    left join public.org_roles r on r.org_id = m.org_id and r.key = m.role
    where m.org_id = v_doc.org_id and m.user_id = p_user_id and (p_aal2 or not o.require_mfa);
  end if;
  if 'content.read' = any (coalesce(v_perms, '{}'))
     and (v_doc.visibility <> 'private' or (p_user_id is not null and v_doc.owner_id = p_user_id) or 'org.manage' = any (v_perms)) then
    v_member := case when 'content.write' = any (v_perms) then 3 else 2 end;
  end if;
  if p_user_id is not null and v_member < 3 then
    select coalesce(max(g.rank), 0), coalesce(bool_or(g.allow_download), false) into v_share, v_share_copy
    from private.content_user_grants(p_user_id, p_aal2) g where g.document_id = p_document_id;
  end if;
  return query select
    greatest(v_member, v_share,
             case when (p_user_id is not null or p_api_key_id is not null) and v_doc.status = 'published'
                       and (v_doc.visibility = 'public' or (v_doc.is_template and v_doc.template_scope = 'global')) then 1 else 0 end),
    v_member,
    v_member > 0 or v_share_copy or (v_doc.status = 'published' and v_doc.is_template and v_doc.template_scope = 'global');
end
$$;

-- The caller's level, from the request's claims (parsed once here). The service role has full access.
create or replace function private.content_level(p_document_id uuid) returns int
language plpgsql stable security definer
set search_path = ''
as $$
declare
  v_claims jsonb := coalesce(nullif(current_setting('request.jwt.claims', true), ''), '{}')::jsonb;
begin
  if v_claims ->> 'role' = 'service_role' then
    return 3;
  end if;
  return (select l.level from private.content_level_for(p_document_id, nullif(v_claims ->> 'sub', '')::uuid,
                                                        nullif(v_claims ->> 'api_key_id', '')::uuid,
                                                        coalesce(v_claims ->> 'aal', 'aal1') = 'aal2') l);
end
$$;

-- The caller's access: level (0 = none), whether it comes from membership at edit level (which
-- also manages shares), and whether they may copy. Never raises: RLS calls it.
create or replace function private.content_access(p_document_id uuid)
returns table (org_id uuid, level int, can_manage boolean, can_copy boolean)
language plpgsql stable security definer
set search_path = ''
as $$
declare
  v_claims jsonb := coalesce(nullif(current_setting('request.jwt.claims', true), ''), '{}')::jsonb;
  v_org uuid;
  v_l record;
begin
  select d.org_id into v_org from content.documents d where d.id = p_document_id;
  if v_org is null then
    return query select null::uuid, 0, false, false;
    return;
  end if;
  if v_claims ->> 'role' = 'service_role' then
    return query select v_org, 3, true, true;
    return;
  end if;
  select * into v_l from private.content_level_for(p_document_id, nullif(v_claims ->> 'sub', '')::uuid,
                                                    nullif(v_claims ->> 'api_key_id', '')::uuid,
                                                    coalesce(v_claims ->> 'aal', 'aal1') = 'aal2');
  return query select v_org, v_l.level, v_l.member_level = 3, v_l.can_copy;
end
$$;

-- For RPCs: PT404 unless the caller can view, 42501 below p_min (1 view, 2 comment, 3 edit).
-- Returns the document's org.
create or replace function private.content_require(p_document_id uuid, p_min int) returns uuid
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
  if v_a.level < p_min then
    raise exception 'you need % access to this document', case p_min when 3 then 'edit' when 2 then 'comment' else 'view' end
      using errcode = '42501';
  end if;
  return v_a.org_id;
end
$$;

-- For RPCs that change who has access: only managers (edit through membership).
create or replace function private.content_require_manager(p_document_id uuid) returns uuid
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
  if not v_a.can_manage then
    raise exception 'only members who can edit this document in its org manage its sharing' using errcode = '42501';
  end if;
  return v_a.org_id;
end
$$;

revoke all on function private.content_level_rank(text), private.content_user_grants(uuid, boolean),
  private.content_reader_keys(), private.content_shared_document_ids(), private.content_level_for(uuid, uuid, uuid, boolean), private.content_level(uuid),
  private.content_access(uuid), private.content_require(uuid, int), private.content_require_manager(uuid) from public;
grant execute on function private.content_level_rank(text), private.content_reader_keys(), private.content_shared_document_ids(), private.content_level(uuid),
  private.content_access(uuid), private.content_require(uuid, int), private.content_require_manager(uuid)
  to authenticated, service_role;
grant execute on function private.content_level_for(uuid, uuid, uuid, boolean), private.content_user_grants(uuid, boolean) to service_role;

-- ---------------------------------------------------------------------------
-- RLS: documents and shares. Tables that hang off a document (versions, comments, the live
-- log, assets) let a row through when its document is readable: a correlated lookup by primary
-- key through this policy, never a scan of every readable document.
-- ---------------------------------------------------------------------------

alter table content.documents enable row level security;
alter table content.shares enable row level security;
revoke all on content.documents, content.shares from anon, authenticated;
grant all on content.documents, content.shares to service_role;
-- Every change goes through RPCs (and the api); clients read.
grant select on content.documents to authenticated, anon;
grant select (id, org_id, document_id, grantee_kind, grantee_user_id, grantee_role, level, allow_download, template,
              parent_link_id, expires_at, revoked_at, created_by, created_at, updated_at)
  on content.shares to authenticated;

-- One policy (alternatives OR'd inside it), each half set-based, so a list of one org's
-- documents costs one permission lookup per statement; the share lookup only runs for a row
-- the membership half does not already allow.
create policy "readers read documents by membership, share or publication" on content.documents
  for select to authenticated
  using (
    (org_id, visibility = 'private' and owner_id is distinct from (select auth.uid()))
      in (select k.org_id, k.others_private from private.content_reader_keys() k)
    or id in (select private.content_shared_document_ids())
    or (status = 'published' and (visibility = 'public' or (is_template and template_scope = 'global')))
  );
create policy "anyone reads published public documents" on content.documents
  for select to anon
  using (status = 'published' and visibility = 'public');

-- Managers of a document see all its shares; grantees see their own.
create policy "managers and grantees read shares" on content.shares
  for select to authenticated
  using (
    grantee_user_id = (select auth.uid())
    or (org_id in (select private.org_ids_with_permission('content.write'))
        and (select a.can_manage from private.content_access(document_id) a))
  );
