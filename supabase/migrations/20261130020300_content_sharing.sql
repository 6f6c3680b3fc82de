-- Content engine, part 4: sharing (users, org roles, links), forks and templates, document
-- metadata, and search.
--
-- Links are used through the api (POST /api/content/links/...), which calls the private
-- functions below: anon may only ever read a linked document through a check of its token, a
-- wrong password must be counted even though the request fails (so the check commits and
-- answers with a status), and a signed-in user who opens a link redeems it into a user grant
-- that RLS, Realtime and Storage then honour while the link lives.

-- ---------------------------------------------------------------------------
-- Shares
-- ---------------------------------------------------------------------------

create or replace function private.content_share_json(s content.shares) returns jsonb
language sql stable
set search_path = ''
as $$
  select jsonb_build_object('id', s.id, 'document_id', s.document_id, 'grantee_kind', s.grantee_kind,
    'grantee_user_id', s.grantee_user_id, 'grantee_role', s.grantee_role, 'level', s.level,
    'allow_download', s.allow_download, 'template', s.template, 'has_password', s.password_hash is not null,
    'expires_at', s.expires_at, 'revoked_at', s.revoked_at, 'created_at', s.created_at)
$$;
revoke all on function private.content_share_json(content.shares) from public;

create or replace function private.content_check_share_input(p_level text, p_expires_at timestamptz) returns void
language plpgsql immutable
set search_path = ''
as $$
begin
  if p_level is null or p_level not in ('view', 'comment', 'edit') then
    raise exception 'level is view, comment or edit' using errcode = '22023';
  end if;
  if p_expires_at is not null and p_expires_at <= now() then
    raise exception 'expires_at must be in the future' using errcode = '22023';
  end if;
end
$$;
revoke all on function private.content_check_share_input(text, timestamptz) from public;

create or replace function content.share_with_user(
  p_document_id uuid, p_level text, p_email text default null, p_user_id uuid default null,
  p_expires_at timestamptz default null, p_allow_download boolean default true)
returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_org uuid := private.content_require_manager(p_document_id);
  v_grantee uuid;
  v_share content.shares;
begin
  perform private.content_check_share_input(p_level, p_expires_at);
  if (p_email is null) = (p_user_id is null) then
    raise exception 'name the person by p_email or by p_user_id' using errcode = '22023';
  end if;
  select u.id into v_grantee from auth.users u
  where (p_user_id is not null and u.id = p_user_id) or (p_email is not null and lower(u.email) = lower(btrim(p_email)));
  if v_grantee is null or not exists (select 1 from public.profiles p where p.id = v_grantee) then
    raise exception 'no user with that %', case when p_email is null then 'id' else 'email' end using errcode = 'PT404',
      hint = 'Invite them to the org, or ask them to sign up first.';
  end if;
  if v_grantee = v_uid then
    raise exception 'you cannot share a document with yourself' using errcode = '22023';
  end if;
  update content.shares s set level = p_level, expires_at = p_expires_at, allow_download = coalesce(p_allow_download, true)
   where s.document_id = p_document_id and s.grantee_kind = 'user' and s.grantee_user_id = v_grantee and s.revoked_at is null
  returning * into v_share;
  if not found then
    insert into content.shares (org_id, document_id, grantee_kind, grantee_user_id, level, expires_at, allow_download, created_by)
    values (v_org, p_document_id, 'user', v_grantee, p_level, p_expires_at, coalesce(p_allow_download, true), v_uid)
    returning * into v_share;
  end if;
  return private.content_share_json(v_share);
end
$$;
comment on function content.share_with_user(uuid, text, text, uuid, timestamptz, boolean) is 'Grants a person (by email or user id, in any org) view, comment or edit access; replaces their earlier grant. Managers only (edit access through membership).';

create or replace function content.share_with_role(
  p_document_id uuid, p_role text, p_level text, p_expires_at timestamptz default null, p_allow_download boolean default true)
returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_org uuid := private.content_require_manager(p_document_id);
  v_share content.shares;
begin
  perform private.content_check_share_input(p_level, p_expires_at);
  if p_role is null or not (exists (select 1 from public.builtin_roles b where b.key = p_role)
                            or exists (select 1 from public.org_roles r where r.org_id = v_org and r.key = p_role)) then
    raise exception 'unknown role "%" in this document''s org', p_role using errcode = '22023';
  end if;
  update content.shares s set level = p_level, expires_at = p_expires_at, allow_download = coalesce(p_allow_download, true)
   where s.document_id = p_document_id and s.grantee_kind = 'role' and s.grantee_role = p_role and s.revoked_at is null
  returning * into v_share;
  if not found then
    insert into content.shares (org_id, document_id, grantee_kind, grantee_role, level, expires_at, allow_download, created_by)
    values (v_org, p_document_id, 'role', p_role, p_level, p_expires_at, coalesce(p_allow_download, true), v_uid)
    returning * into v_share;
  end if;
  return private.content_share_json(v_share);
end
$$;
comment on function content.share_with_role(uuid, text, text, timestamptz, boolean) is 'Grants everyone holding a role in the document''s org a level on it (a private document, say, to all editors). Managers only.';

create or replace function content.create_link(
  p_document_id uuid, p_level text default 'view', p_expires_at timestamptz default now() + interval '30 days',
  p_password text default null, p_allow_download boolean default true, p_template boolean default false)
returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_org uuid := private.content_require_manager(p_document_id);
  v_token text := private.random_token(32);
  v_share content.shares;
begin
  perform private.content_check_share_input(p_level, p_expires_at);
  if p_expires_at is null or p_expires_at > now() + interval '1 year' then
    raise exception 'a link expires within a year' using errcode = '22023';
  end if;
  if p_password is not null and char_length(p_password) not between 6 and 72 then
    raise exception 'a link password has 6 to 72 characters' using errcode = '22023';
  end if;
  if coalesce(p_template, false) and p_level <> 'view' then
    raise exception 'a template link copies, it never edits: its level is view' using errcode = '22023';
  end if;
  if (select d.visibility from content.documents d where d.id = p_document_id) not in ('link', 'public') then
    raise exception 'links work on documents whose visibility is link or public' using errcode = '22023',
      hint = 'Set the visibility with content.update_document first.';
  end if;
  insert into content.shares (org_id, document_id, grantee_kind, token_hash, password_hash, level, expires_at, allow_download, template, created_by)
  values (v_org, p_document_id, 'link', private.token_hash(v_token),
          case when p_password is not null then extensions.crypt(p_password, extensions.gen_salt('bf', 8)) end,
          p_level, p_expires_at, coalesce(p_allow_download, true), coalesce(p_template, false), v_uid)
  returning * into v_share;
  return private.content_share_json(v_share) || jsonb_build_object('token', v_token);
end
$$;
comment on function content.create_link(uuid, text, timestamptz, text, boolean, boolean) is 'Makes a link (view, comment or edit; a template link copies only) with an expiry and an optional password. The token is returned once; only its hash is kept. Managers only; the document''s visibility must be link or public.';

-- Revoking sends a revoke broadcast on the document's channels: Realtime authorizes a channel at
-- join, so a client that lost access would otherwise keep receiving until it rejoins. Clients
-- that get one ask content.my_access and leave when they have none.
create or replace function content.revoke_share(p_share_id uuid)
returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_share content.shares;
  v_users uuid[];
begin
  perform private.require_user();
  select * into v_share from content.shares s where s.id = p_share_id;
  if not found or coalesce(private.content_level(v_share.document_id), 0) = 0 then
    raise exception 'share not found' using errcode = 'PT404';
  end if;
  perform private.content_require_manager(v_share.document_id);
  with revoked as (
    update content.shares s set revoked_at = now()
     where (s.id = p_share_id or s.parent_link_id = p_share_id) and s.revoked_at is null
    returning s.grantee_user_id
  )
  select array_agg(r.grantee_user_id) filter (where r.grantee_user_id is not null) into v_users from revoked r;
  select * into v_share from content.shares s where s.id = p_share_id;
  perform realtime.send(
    jsonb_build_object('share_id', v_share.id, 'grantee_kind', v_share.grantee_kind, 'grantee_role', v_share.grantee_role,
                       'user_ids', coalesce(to_jsonb(v_users), '[]'::jsonb)),
    'revoke', topic, true)
  from unnest(array['doc:' || v_share.document_id::text, 'doc:' || v_share.document_id::text || ':cursor']) topic;
  return private.content_share_json(v_share);
end
$$;
comment on function content.revoke_share(uuid) is 'Revokes a share (a link also takes the grants redeemed from it) and sends a revoke broadcast on doc:<id>, so open clients re-check their access and leave. Managers only.';

create or replace function content.my_access(p_document_id uuid)
returns jsonb
language plpgsql stable security definer
set search_path = ''
as $$
declare
  v_a record;
begin
  select * into v_a from private.content_access(p_document_id);
  return jsonb_build_object('document_id', p_document_id,
    'level', case v_a.level when 3 then 'edit' when 2 then 'comment' when 1 then 'view' else 'none' end,
    'can_manage', coalesce(v_a.can_manage, false), 'can_copy', coalesce(v_a.can_copy, false));
end
$$;
comment on function content.my_access(uuid) is 'The caller''s access to a document: level (none, view, comment, edit), whether they manage its sharing, and whether they may copy it. Never raises.';

-- ---------------------------------------------------------------------------
-- Links (the api calls these)
-- ---------------------------------------------------------------------------

-- Checks a link token (and password), counting wrong passwords: five lock it for 15 minutes.
-- Commits in every case; the status says what happened.
create or replace function private.content_check_link(p_token text, p_password text)
returns table (status text, share_id uuid)
language plpgsql security definer
set search_path = ''
as $$
declare
  v_share content.shares;
  v_visibility text;
begin
  if p_token is null or p_token !~ '^[A-Za-z0-9_-]{20,100}$' then
    return query select 'not_found', null::uuid;
    return;
  end if;
  select * into v_share from content.shares s where s.token_hash = private.token_hash(p_token) for update;
  if not found then
    return query select 'not_found', null::uuid;
    return;
  end if;
  select d.visibility into v_visibility from content.documents d where d.id = v_share.document_id;
  if v_share.revoked_at is not null or v_visibility not in ('link', 'public') then
    return query select 'revoked', v_share.id;
    return;
  end if;
  if v_share.expires_at is not null and v_share.expires_at <= now() then
    return query select 'expired', v_share.id;
    return;
  end if;
  if v_share.locked_until is not null and v_share.locked_until > now() then
    return query select 'locked', v_share.id;
    return;
  end if;
  if v_share.password_hash is not null then
    if p_password is null then
      return query select 'password_required', v_share.id;
      return;
    end if;
    if extensions.crypt(p_password, v_share.password_hash) <> v_share.password_hash then
      update content.shares s
         set failed_attempts = case when s.failed_attempts + 1 >= 5 then 0 else s.failed_attempts + 1 end,
             locked_until = case when s.failed_attempts + 1 >= 5 then now() + interval '15 minutes' else s.locked_until end
       where s.id = v_share.id;
      return query select 'wrong_password', v_share.id;
      return;
    end if;
    if v_share.failed_attempts > 0 then
      update content.shares s set failed_attempts = 0 where s.id = v_share.id;
    end if;
  end if;
  return query select 'ok', v_share.id;
end
$$;

-- What a link shows (anon or anyone): the document, the link's terms, verified assets, and for
-- a live document its state and log (the api derives the current body from them).
create or replace function private.content_open_link(p_token text, p_password text)
returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_check record;
begin
  select * into v_check from private.content_check_link(p_token, p_password);
  if v_check.status <> 'ok' then
    return jsonb_build_object('status', v_check.status);
  end if;
  return (
    select jsonb_build_object(
      'status', 'ok',
      'share', jsonb_build_object('level', s.level, 'allow_download', s.allow_download, 'template', s.template, 'expires_at', s.expires_at),
      'document', jsonb_build_object('id', d.id, 'org_id', d.org_id, 'kind', d.kind, 'title', d.title, 'body', d.body, 'status', d.status,
                                     'revision', d.revision, 'body_revision', d.body_revision, 'tags', to_jsonb(d.tags),
                                     'updated_at', d.updated_at),
      'assets', coalesce((select jsonb_agg(jsonb_build_object('id', a.id, 'mime_type', a.mime_type, 'size_bytes', a.size_bytes,
                                                             'width', a.width, 'height', a.height, 'duration_ms', a.duration_ms) order by a.created_at)
                          from content.assets a where a.document_id = d.id and a.status = 'verified'), '[]'::jsonb),
      'live', case when d.body_revision < d.revision then jsonb_build_object(
                'ystate', private.content_b64(ls.ystate),
                'updates', coalesce((select jsonb_agg(jsonb_build_object('update_id', u.id, 'revision', u.revision,
                                       'updates', (select jsonb_agg(private.content_b64(x) order by o) from unnest(u.updates) with ordinality t (x, o)))
                                     order by u.id) from content.doc_updates u where u.document_id = d.id), '[]'::jsonb)) end)
    from content.shares s
    join content.documents d on d.id = s.document_id
    left join content.live_states ls on ls.document_id = d.id
    where s.id = v_check.share_id);
end
$$;

-- A verified asset of a linked document, for the api to sign a URL to.
create or replace function private.content_link_asset(p_token text, p_password text, p_asset_id uuid)
returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_check record;
  v_out jsonb;
begin
  select * into v_check from private.content_check_link(p_token, p_password);
  if v_check.status <> 'ok' then
    return jsonb_build_object('status', v_check.status);
  end if;
  select jsonb_build_object('status', 'ok', 'bucket_id', a.bucket_id, 'object_path', a.object_path, 'allow_download', s.allow_download)
    into v_out
  from content.shares s join content.assets a on a.document_id = s.document_id
  where s.id = v_check.share_id and a.id = p_asset_id and a.status = 'verified';
  return coalesce(v_out, jsonb_build_object('status', 'asset_not_found'));
end
$$;

-- A signed-in user turns a link into a grant of their own (what RLS, Realtime and Storage read).
-- It lives only while the link does; a template link grants view.
create or replace function private.content_redeem_link(p_token text, p_password text)
returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_check record;
  v_link content.shares;
  v_current int;
begin
  select * into v_check from private.content_check_link(p_token, p_password);
  if v_check.status <> 'ok' then
    return jsonb_build_object('status', v_check.status);
  end if;
  select * into v_link from content.shares s where s.id = v_check.share_id;
  v_current := coalesce(private.content_level(v_link.document_id), 0);
  if v_current < private.content_level_rank(v_link.level) then
    update content.shares s set revoked_at = now()
     where s.document_id = v_link.document_id and s.grantee_kind = 'user' and s.grantee_user_id = v_uid
       and s.revoked_at is null and s.parent_link_id is not null;
    insert into content.shares (org_id, document_id, grantee_kind, grantee_user_id, level, allow_download, parent_link_id, expires_at, created_by)
    values (v_link.org_id, v_link.document_id, 'user', v_uid, v_link.level, v_link.allow_download, v_link.id, v_link.expires_at, v_link.created_by)
    on conflict (document_id, grantee_user_id) where grantee_kind = 'user' and revoked_at is null do nothing;
  end if;
  v_current := coalesce(private.content_level(v_link.document_id), 0);
  return jsonb_build_object('status', 'ok', 'document_id', v_link.document_id, 'template', v_link.template,
    'level', case v_current when 3 then 'edit' when 2 then 'comment' else 'view' end);
end
$$;

revoke all on function private.content_check_link(text, text), private.content_open_link(text, text),
  private.content_link_asset(text, text, uuid), private.content_redeem_link(text, text) from public;
grant execute on function private.content_open_link(text, text), private.content_link_asset(text, text, uuid) to service_role;
grant execute on function private.content_redeem_link(text, text) to authenticated;

-- ---------------------------------------------------------------------------
-- Forks, duplicates and templates
-- ---------------------------------------------------------------------------

-- Copies a document into an org the caller writes to: body, title, tags, the live state and
-- its log (bytes as they are: no merge needed), and the asset references. Bytes stay where
-- they are until an asset is edited (POST /api/content/assets/{id}/detach).
create or replace function private.content_copy_document(p_source_id uuid, p_target_org_id uuid, p_title text, p_origin text)
returns content.documents
language plpgsql security definer
set search_path = ''
as $$
declare
  v_src content.documents;
  v_doc content.documents;
begin
  if p_target_org_id is null or not exists (select 1 from public.orgs o where o.id = p_target_org_id and o.id in (select private.member_org_ids())) then
    raise exception 'org not found' using errcode = 'PT404';
  end if;
  if not private.has_permission(p_target_org_id, 'content.write') then
    raise exception 'missing permission content.write in the target org' using errcode = '42501';
  end if;
  if p_title is not null and char_length(btrim(p_title)) > 300 then
    raise exception 'a title has at most 300 characters' using errcode = '22023';
  end if;
  select * into v_src from content.documents d where d.id = p_source_id;
  insert into content.documents (org_id, kind, title, body, search_text, tags, visibility, status, owner_id, forked_from, origin,
                                 created_by, template_category, template_locale)
  values (p_target_org_id, v_src.kind, coalesce(btrim(p_title), v_src.title), v_src.body, v_src.search_text, v_src.tags,
          case when v_src.visibility = 'private' then 'private' else 'org' end, 'draft', (select auth.uid()), v_src.id, p_origin,
          (select u.id from auth.users u where u.id = (select auth.uid())),
          case when p_origin = 'fork' then v_src.template_category end, case when p_origin = 'fork' then v_src.template_locale end)
  returning * into v_doc;
  insert into content.live_states (document_id, org_id, ystate, ystate_sv)
  select v_doc.id, p_target_org_id, s.ystate, s.ystate_sv from content.live_states s where s.document_id = v_src.id;
  insert into content.doc_updates (document_id, updates)
  select v_doc.id, u.updates from content.doc_updates u where u.document_id = v_src.id order by u.id;
  -- Each copied batch moved the copy's revision on; its body_revision stays 1, so the body counts
  -- as behind until compaction (woken by those inserts) derives it from the merged state.
  select * into v_doc from content.documents d where d.id = v_doc.id;
  insert into content.assets (org_id, document_id, bucket_id, object_path, filename, declared_mime, mime_type, size_bytes, sha256,
                              width, height, duration_ms, status, source_asset_id, verified_at, created_by)
  select p_target_org_id, v_doc.id, a.bucket_id, a.object_path, a.filename, a.declared_mime, a.mime_type, a.size_bytes, a.sha256,
         a.width, a.height, a.duration_ms, a.status, coalesce(a.source_asset_id, a.id), a.verified_at,
         (select u.id from auth.users u where u.id = (select auth.uid()))
  from content.assets a where a.document_id = v_src.id and a.status = 'verified';
  perform private.emit_event(p_target_org_id, 'content.document_created', 'document', v_doc.id::text,
    jsonb_build_object('document_id', v_doc.id, 'kind', v_doc.kind, 'visibility', v_doc.visibility));
  return v_doc;
end
$$;
revoke all on function private.content_copy_document(uuid, uuid, text, text) from public;

create or replace function content.fork_document(p_document_id uuid, p_target_org_id uuid, p_title text default null)
returns content.documents
language plpgsql security definer
set search_path = ''
as $$
declare
  v_a record;
begin
  select * into v_a from private.content_access(p_document_id);
  if v_a.level = 0 then
    raise exception 'document not found' using errcode = 'PT404';
  end if;
  if not v_a.can_copy then
    raise exception 'this document was shared without copying (allow_download is off)' using errcode = '42501';
  end if;
  return private.content_copy_document(p_document_id, p_target_org_id, p_title, 'fork');
end
$$;
comment on function content.fork_document(uuid, uuid, text) is 'Forks or duplicates a document into any org the caller can write to (the same org duplicates it): body, tags, live state and asset references; forked_from keeps the lineage. Needs read access that allows copying.';

create or replace function content.use_template(p_template_id uuid, p_target_org_id uuid, p_title text default null)
returns content.documents
language plpgsql security definer
set search_path = ''
as $$
begin
  if coalesce(private.content_level(p_template_id), 0) = 0
     or not exists (select 1 from content.documents d where d.id = p_template_id and d.is_template) then
    raise exception 'template not found' using errcode = 'PT404';
  end if;
  return private.content_copy_document(p_template_id, p_target_org_id, p_title, 'template');
end
$$;
comment on function content.use_template(uuid, uuid, text) is 'Creates a fresh draft from a template the caller can see (their org''s gallery or the global one) in an org they write to.';

-- A template link copies without any other access to the document.
create or replace function private.content_copy_from_link(p_token text, p_password text, p_target_org_id uuid, p_title text)
returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_check record;
  v_share content.shares;
  v_doc content.documents;
begin
  perform private.require_user();
  select * into v_check from private.content_check_link(p_token, p_password);
  if v_check.status <> 'ok' then
    return jsonb_build_object('status', v_check.status);
  end if;
  select * into v_share from content.shares s where s.id = v_check.share_id;
  if not (v_share.template or v_share.allow_download) then
    return jsonb_build_object('status', 'copy_not_allowed');
  end if;
  v_doc := private.content_copy_document(v_share.document_id, p_target_org_id, p_title, case when v_share.template then 'template' else 'fork' end);
  return jsonb_build_object('status', 'ok', 'document', to_jsonb(v_doc) - 'search');
end
$$;
revoke all on function private.content_copy_from_link(text, text, uuid, text) from public;
grant execute on function private.content_copy_from_link(text, text, uuid, text) to authenticated;

-- Every org's own gallery plus the global one (global templates are published and curated by
-- the platform: template_scope is set by the service role only).
create view content.template_gallery with (security_invoker = true) as
select d.id, d.org_id, d.kind, d.title, d.template_scope as scope, d.template_category as category, d.template_locale as locale,
       d.tags, d.updated_at
from content.documents d
where d.is_template and d.status <> 'archived';
comment on view content.template_gallery is 'Templates the caller can use: their orgs'' (scope org) and the global gallery (scope global, published). Filter by category and locale; content.use_template makes a fresh document.';
grant select on content.template_gallery to authenticated;

-- ---------------------------------------------------------------------------
-- Metadata, deletion
-- ---------------------------------------------------------------------------

create or replace function content.update_document(
  p_document_id uuid, p_title text default null, p_tags text[] default null, p_visibility text default null,
  p_is_template boolean default null, p_template_category text default null, p_template_locale text default null)
returns content.documents
language plpgsql security definer
set search_path = ''
as $$
declare
  v_a record;
  v_doc content.documents;
begin
  select * into v_a from private.content_access(p_document_id);
  if v_a.level = 0 then
    raise exception 'document not found' using errcode = 'PT404';
  end if;
  if v_a.level < 3 then
    raise exception 'you need edit access to this document' using errcode = '42501';
  end if;
  if (p_visibility is not null or p_is_template is not null or p_template_category is not null or p_template_locale is not null)
     and not v_a.can_manage then
    raise exception 'only members who can edit this document in its org change its visibility or template listing' using errcode = '42501';
  end if;
  if p_title is not null and char_length(btrim(p_title)) > 300 then
    raise exception 'a title has at most 300 characters' using errcode = '22023';
  end if;
  if p_tags is not null and not private.content_valid_tags(p_tags) then
    raise exception 'tags: at most 50, each 1 to 50 characters without surrounding spaces' using errcode = '22023';
  end if;
  if p_visibility is not null and p_visibility not in ('private', 'org', 'link', 'public') then
    raise exception 'visibility is private, org, link or public' using errcode = '22023';
  end if;
  update content.documents d set
    title = coalesce(btrim(p_title), d.title),
    tags = coalesce(p_tags, d.tags),
    visibility = coalesce(p_visibility, d.visibility),
    is_template = coalesce(p_is_template, d.is_template),
    template_category = coalesce(nullif(btrim(p_template_category), ''), d.template_category),
    template_locale = coalesce(p_template_locale, d.template_locale)
  where d.id = p_document_id
  returning * into v_doc;
  return v_doc;
end
$$;
comment on function content.update_document(uuid, text, text[], text, boolean, text, text) is 'Changes a document''s title or tags (editors), or its visibility and template listing (managers). The body changes through the api.';

create or replace function content.delete_document(p_document_id uuid)
returns void
language plpgsql security definer
set search_path = ''
as $$
declare
  v_doc content.documents;
  v_a record;
begin
  select * into v_a from private.content_access(p_document_id);
  if v_a.level = 0 then
    raise exception 'document not found' using errcode = 'PT404';
  end if;
  select * into v_doc from content.documents d where d.id = p_document_id for update;
  if not v_a.can_manage and (v_doc.owner_id is distinct from (select auth.uid()) or v_a.level < 3) then
    raise exception 'only the owner or a manager deletes a document' using errcode = '42501';
  end if;
  delete from content.documents d where d.id = p_document_id;
  perform private.emit_event(v_doc.org_id, 'content.document_deleted', 'document', p_document_id::text,
    jsonb_build_object('document_id', p_document_id, 'kind', v_doc.kind));
  perform realtime.send(jsonb_build_object('document_id', p_document_id), 'deleted', 'doc:' || p_document_id::text, true);
end
$$;
comment on function content.delete_document(uuid) is 'Deletes a document with its versions, shares, comments and asset references (the owner or a manager). Forks keep their copies; unreferenced files are removed by the retention job.';

-- ---------------------------------------------------------------------------
-- Search
-- ---------------------------------------------------------------------------

-- Ranked full-text search over title (A) and body text (B), with typo-tolerant title matches
-- (pg_trgm word similarity), as the caller: RLS decides what comes back. The query is built
-- with only the filters given, so each call is planned for its own values.
create or replace function content.search_documents(
  p_query text, p_org_id uuid default null, p_kind text default null, p_include_archived boolean default false,
  p_limit int default 20, p_offset int default 0)
returns table (id uuid, org_id uuid, kind text, title text, status text, visibility text, tags text[], updated_at timestamptz,
               rank real, headline text)
language plpgsql stable
set search_path = ''
as $$
declare
  v_text text := btrim(coalesce(p_query, ''));
  -- Typo-tolerant title matches for plain queries only: a phrase, an exclusion or an "or" asks
  -- for exactly what it says.
  v_fuzzy boolean := v_text !~* '(^|\s)-|"|\sor\s';
  v_sql text;
begin
  if char_length(v_text) not between 1 and 200 then
    raise exception 'a search query has 1 to 200 characters' using errcode = '22023';
  end if;
  if p_limit is null or p_limit not between 1 and 100 or p_offset is null or p_offset not between 0 and 10000 then
    raise exception 'p_limit is 1 to 100 and p_offset 0 to 10,000' using errcode = '22023';
  end if;
  v_sql := format($q$
    select d.id, d.org_id, d.kind, d.title, d.status, d.visibility, d.tags, d.updated_at,
           (ts_rank(d.search, q.tsq) + extensions.word_similarity(%1$L, d.title))::real as rank,
           ts_headline('english'::regconfig, left(d.search_text, 20000), q.tsq,
                       'MaxFragments=1, MaxWords=24, MinWords=8, StartSel=<mark>, StopSel=</mark>') as headline
    from content.documents d, (select websearch_to_tsquery('english'::regconfig, %1$L) as tsq) q
    where (d.search @@ q.tsq %7$s) %2$s %3$s %4$s
    order by rank desc, d.updated_at desc, d.id
    limit %5$s offset %6$s$q$,
    v_text,
    case when p_org_id is not null then format('and d.org_id = %L', p_org_id) else '' end,
    case when p_kind is not null then format('and d.kind = %L', p_kind) else '' end,
    case when not coalesce(p_include_archived, false) then 'and d.status <> ''archived''' else '' end,
    p_limit, p_offset,
    case when v_fuzzy then format('or %L operator(extensions.<%%) d.title', v_text) else '' end);
  return query execute v_sql;
end
$$;
comment on function content.search_documents(text, uuid, text, boolean, int, int) is 'Ranked search (websearch syntax: "quoted phrases", or, -exclude) over titles and body text, plus typo-tolerant title matches for plain queries; only documents the caller may read. Paginate with p_limit (≤ 100) and p_offset.';

revoke all on function content.share_with_user(uuid, text, text, uuid, timestamptz, boolean),
  content.share_with_role(uuid, text, text, timestamptz, boolean),
  content.create_link(uuid, text, timestamptz, text, boolean, boolean), content.revoke_share(uuid), content.my_access(uuid),
  content.fork_document(uuid, uuid, text), content.use_template(uuid, uuid, text),
  content.update_document(uuid, text, text[], text, boolean, text, text), content.delete_document(uuid),
  content.search_documents(text, uuid, text, boolean, int, int) from public, anon;
grant execute on function content.share_with_user(uuid, text, text, uuid, timestamptz, boolean),
  content.share_with_role(uuid, text, text, timestamptz, boolean),
  content.create_link(uuid, text, timestamptz, text, boolean, boolean), content.revoke_share(uuid), content.my_access(uuid),
  content.fork_document(uuid, uuid, text), content.use_template(uuid, uuid, text),
  content.update_document(uuid, text, text[], text, boolean, text, text), content.delete_document(uuid),
  content.search_documents(text, uuid, text, boolean, int, int) to authenticated, service_role;
