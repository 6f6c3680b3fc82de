-- Content engine, part 5: assets in Storage.
--
-- Bytes live in the bucket content-assets at <org_id>/<document_id>/<asset_id>.<ext>; a row in
-- content.assets describes each one. Upload: the api reserves a row (edit access, the plan's
-- storage_gb) and hands out a signed upload URL for exactly that path. The upload's
-- storage.object_created event reaches the "content-assets" outbox consumer, which queues
-- content.verify_asset: the worker reads the real bytes with the service key, sniffs their type
-- with file-type, rejects a file that lies (or SVG, which magic bytes cannot vouch for), and
-- records mime type, size, checksum and dimensions or duration. Reading goes by document access:
-- an object is readable by whoever can read a document holding a verified reference to it, so
-- shares and forks (which copy references, not bytes) need no policy of their own.

-- The bucket is registered with no permissions: the org-folder policies grant nothing here, and
-- the policies below decide per document.
insert into storage.buckets (id, name, public, file_size_limit)
values ('content-assets', 'content-assets', false, 104857600)
on conflict (id) do nothing;
insert into private.org_buckets (bucket_id, read_permission, write_permission, module)
values ('content-assets', null, null, 'content');

create table content.assets (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null references public.orgs (id) on delete cascade,
  document_id uuid not null references content.documents (id) on delete cascade,
  bucket_id text not null default 'content-assets' references storage.buckets (id),
  object_path text not null check (char_length(object_path) <= 400),
  filename text check (char_length(filename) between 1 and 255),
  declared_mime text check (char_length(declared_mime) <= 100),
  declared_size bigint check (declared_size > 0),
  mime_type text,
  size_bytes bigint,
  sha256 text check (sha256 ~ '^[0-9a-f]{64}$'),
  width int,
  height int,
  duration_ms int,
  status text not null default 'pending' check (status in ('pending', 'uploaded', 'verified', 'rejected')),
  reject_reason text,
  source_asset_id uuid references content.assets (id) on delete set null,
  created_by uuid references auth.users (id) on delete set null,
  created_at timestamptz not null default now(),
  verified_at timestamptz,
  updated_at timestamptz not null default now(),
  constraint verified_assets_are_described check (status <> 'verified' or (mime_type is not null and size_bytes is not null and sha256 is not null))
);
create index assets_org_id_idx on content.assets (org_id, document_id);
create index assets_document_idx on content.assets (document_id, created_at);
create index assets_object_idx on content.assets (bucket_id, object_path);
create index assets_source_idx on content.assets (source_asset_id);
create index assets_created_by_idx on content.assets (created_by);
create index assets_pending_idx on content.assets (created_at) where status in ('pending', 'uploaded');
comment on table content.assets is 'Files a document uses. Reserved by the api (plan limit, signed upload URL), verified by the worker from the real bytes, read through Storage by anyone who can read the document. Forks copy the row, not the bytes.';
comment on column content.assets.object_path is 'Where the bytes are: <org_id>/<document_id>/<asset_id>.<ext>, or the source''s path for a fork that has not edited the asset yet.';
comment on column content.assets.declared_mime is 'The type the uploader claimed; never trusted.';
comment on column content.assets.mime_type is 'The type sniffed from the bytes (file-type) at verification.';
comment on column content.assets.status is 'pending (URL issued), uploaded (bytes arrived, check queued), verified, or rejected (reject_reason says why; the bytes are deleted).';
comment on column content.assets.source_asset_id is 'For a forked reference: the asset it was copied from.';
create trigger assets_updated_at before update on content.assets for each row execute function private.set_updated_at();

alter table content.assets enable row level security;
revoke all on content.assets from anon, authenticated;
grant all on content.assets to service_role;
grant select on content.assets to authenticated;
create policy "readers of a document read its assets" on content.assets
  for select to authenticated
  using (exists (select 1 from content.documents d where d.id = assets.document_id));

-- Storage: reading by document access; nobody but the service role writes (uploads come with a
-- signed URL the api issued after its checks).
create or replace function private.content_object_readable(p_bucket text, p_name text) returns boolean
language plpgsql stable security definer
set search_path = ''
as $$
declare
  v_doc uuid;
begin
  for v_doc in
    select a.document_id from content.assets a
    where a.bucket_id = p_bucket and a.object_path = p_name and a.status = 'verified'
  loop
    if private.content_level(v_doc) >= 1 then
      return true;
    end if;
  end loop;
  return false;
end
$$;
revoke all on function private.content_object_readable(text, text) from public;
grant execute on function private.content_object_readable(text, text) to authenticated;

create policy "readers of a document read its asset files" on storage.objects
  for select to authenticated
  using (bucket_id = 'content-assets' and private.content_object_readable(bucket_id, name));

-- ---------------------------------------------------------------------------
-- Uploading
-- ---------------------------------------------------------------------------

create or replace function private.content_extension_for(p_mime text) returns text
language sql immutable
set search_path = ''
as $$
  select case p_mime
    when 'image/png' then 'png' when 'image/jpeg' then 'jpg' when 'image/gif' then 'gif' when 'image/webp' then 'webp'
    when 'image/avif' then 'avif' when 'video/mp4' then 'mp4' when 'video/webm' then 'webm' when 'video/quicktime' then 'mov'
    when 'audio/mpeg' then 'mp3' when 'audio/wav' then 'wav' when 'audio/x-wav' then 'wav' when 'audio/ogg' then 'ogg'
    when 'audio/mp4' then 'm4a' when 'application/pdf' then 'pdf' end
$$;
revoke all on function private.content_extension_for(text) from public;

-- Bytes in the org's folders of every org bucket, plus uploads it has reserved but not finished.
create or replace function private.content_storage_used(p_org_id uuid) returns bigint
language sql stable security definer
set search_path = ''
as $$
  select coalesce((select sum((o.metadata ->> 'size')::bigint) from storage.objects o
                   where o.bucket_id in (select b.bucket_id from private.org_buckets b)
                     and o.name like p_org_id::text || '/%'), 0)
       + coalesce((select sum(a.declared_size) from content.assets a
                   where a.org_id = p_org_id and a.status = 'pending' and a.created_at > now() - interval '3 hours'), 0)
$$;
revoke all on function private.content_storage_used(uuid) from public;

create or replace function private.content_reserve_asset(p_document_id uuid, p_filename text, p_mime text, p_size bigint)
returns content.assets
language plpgsql security definer
set search_path = ''
as $$
declare
  v_org uuid := private.content_require(p_document_id, 3);
  v_ext text := private.content_extension_for(lower(p_mime));
  v_limit bigint;
  v_used bigint;
  v_id uuid := gen_random_uuid();
  v_asset content.assets;
begin
  if lower(coalesce(p_mime, '')) like 'image/svg%' or lower(coalesce(p_filename, '')) ~ '\.svgz?$' then
    raise exception 'SVG is not accepted (it can carry scripts, and its bytes cannot be vouched for): upload PNG or WebP'
      using errcode = '22023';
  end if;
  if v_ext is null then
    raise exception 'unsupported file type "%": images (png, jpeg, gif, webp, avif), video (mp4, webm, mov), audio (mp3, wav, ogg, m4a) or pdf', p_mime
      using errcode = '22023';
  end if;
  if p_size is null or p_size not between 1 and 104857600 then
    raise exception 'a file has 1 byte to 100 MiB' using errcode = '22023';
  end if;
  -- Reservations of one org run one at a time, so two cannot both fit in the last gigabyte.
  -- (No key update: foreign-key checks elsewhere, an upload's outbox event among them, never wait on it.)
  perform 1 from public.orgs o where o.id = v_org for no key update;
  v_limit := billing.limit_of(v_org, 'storage_gb');
  v_used := private.content_storage_used(v_org);
  if v_limit is not null and v_used + p_size > v_limit * 1073741824 then
    raise exception 'this upload would take the org past its plan''s % GB of storage (% bytes used)', v_limit, v_used
      using errcode = 'PT402';
  end if;
  insert into content.assets (id, org_id, document_id, object_path, filename, declared_mime, declared_size, created_by)
  values (v_id, v_org, p_document_id, v_org::text || '/' || p_document_id::text || '/' || v_id::text || '.' || v_ext,
          left(btrim(p_filename), 255), lower(p_mime), p_size, (select u.id from auth.users u where u.id = (select auth.uid())))
  returning * into v_asset;
  return v_asset;
end
$$;

-- Copy on write: before an asset of a fork is edited, its bytes are copied (by the api, through
-- Storage) to the asset's own path, and the row follows them.
create or replace function private.content_detach_target(p_asset_id uuid) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_asset content.assets;
  v_own text;
begin
  select * into v_asset from content.assets a where a.id = p_asset_id;
  if not found or coalesce(private.content_level(v_asset.document_id), 0) = 0 then
    raise exception 'asset not found' using errcode = 'PT404';
  end if;
  perform private.content_require(v_asset.document_id, 3);
  if v_asset.status <> 'verified' then
    raise exception 'only a verified asset can be edited' using errcode = '22023';
  end if;
  v_own := v_asset.org_id::text || '/' || v_asset.document_id::text || '/' || v_asset.id::text || '.'
           || coalesce(private.content_extension_for(v_asset.mime_type), 'bin');
  return jsonb_build_object('asset_id', v_asset.id, 'bucket_id', v_asset.bucket_id, 'from', v_asset.object_path, 'to', v_own,
                            'size_bytes', v_asset.size_bytes, 'org_id', v_asset.org_id);
end
$$;

create or replace function private.content_repoint_asset(p_asset_id uuid, p_from text, p_to text) returns content.assets
language plpgsql security definer
set search_path = ''
as $$
declare
  v_target jsonb := private.content_detach_target(p_asset_id);
  v_asset content.assets;
begin
  if v_target ->> 'to' <> p_to then
    raise exception 'an asset moves only to its own path' using errcode = '22023';
  end if;
  update content.assets a set object_path = p_to where a.id = p_asset_id and a.object_path = p_from returning * into v_asset;
  if not found then
    raise exception 'the asset moved meanwhile; try again' using errcode = 'PT409';
  end if;
  return v_asset;
end
$$;

revoke all on function private.content_reserve_asset(uuid, text, text, bigint), private.content_detach_target(uuid),
  private.content_repoint_asset(uuid, text, text) from public;
grant execute on function private.content_reserve_asset(uuid, text, text, bigint), private.content_detach_target(uuid),
  private.content_repoint_asset(uuid, text, text) to authenticated, service_role;

create or replace function content.remove_asset(p_asset_id uuid)
returns void
language plpgsql security definer
set search_path = ''
as $$
declare
  v_doc uuid;
begin
  select a.document_id into v_doc from content.assets a where a.id = p_asset_id;
  if v_doc is null or coalesce(private.content_level(v_doc), 0) = 0 then
    raise exception 'asset not found' using errcode = 'PT404';
  end if;
  perform private.content_require(v_doc, 3);
  delete from content.assets a where a.id = p_asset_id;
end
$$;
comment on function content.remove_asset(uuid) is 'Removes an asset from its document (editors). Its bytes go with the retention job once nothing references them.';
revoke all on function content.remove_asset(uuid) from public, anon;
grant execute on function content.remove_asset(uuid) to authenticated, service_role;

-- ---------------------------------------------------------------------------
-- The worker's side (service role)
-- ---------------------------------------------------------------------------

-- The bytes of a reserved asset arrived: mark it and say which asset to verify.
create or replace function private.content_asset_uploaded(p_bucket text, p_name text) returns uuid
language sql security definer
set search_path = ''
as $$
  update content.assets a set status = 'uploaded'
   where a.bucket_id = p_bucket and a.object_path = p_name and a.status in ('pending', 'uploaded') and a.source_asset_id is null
  returning a.id
$$;

create or replace function private.content_finish_asset(
  p_asset_id uuid, p_verified boolean, p_mime text, p_size bigint, p_sha256 text, p_width int, p_height int, p_duration_ms int,
  p_reason text)
returns content.assets
language plpgsql security definer
set search_path = ''
as $$
declare
  v_asset content.assets;
  v_title text;
begin
  update content.assets a set
    status = case when p_verified then 'verified' else 'rejected' end,
    mime_type = p_mime, size_bytes = p_size, sha256 = p_sha256, width = p_width, height = p_height, duration_ms = p_duration_ms,
    reject_reason = case when p_verified then null else p_reason end,
    verified_at = case when p_verified then now() end
  where a.id = p_asset_id and a.status in ('pending', 'uploaded')
  returning * into v_asset;
  if not found then
    return null;
  end if;
  select d.title into v_title from content.documents d where d.id = v_asset.document_id;
  if p_verified then
    perform private.emit_event(v_asset.org_id, 'content.asset_verified', 'asset', v_asset.id::text,
      jsonb_build_object('asset_id', v_asset.id, 'document_id', v_asset.document_id, 'mime_type', v_asset.mime_type,
                         'size_bytes', v_asset.size_bytes));
  else
    perform private.emit_event(v_asset.org_id, 'content.asset_rejected', 'asset', v_asset.id::text,
      jsonb_build_object('asset_id', v_asset.id, 'document_id', v_asset.document_id, 'user_id', v_asset.created_by,
                         'filename', coalesce(v_asset.filename, 'A file'), 'document_title', coalesce(nullif(v_title, ''), 'Untitled'),
                         'reason', p_reason));
  end if;
  return v_asset;
end
$$;

-- Objects in content-assets no row references (deleted documents and assets, rejected or
-- abandoned uploads), older than p_age; and reservations never uploaded.
create or replace function private.content_orphan_objects(p_age interval, p_limit int default 500)
returns setof text
language sql stable security definer
set search_path = ''
as $$
  select o.name from storage.objects o
  where o.bucket_id = 'content-assets' and o.created_at < now() - p_age
    and not exists (select 1 from content.assets a
                    where a.bucket_id = o.bucket_id and a.object_path = o.name and a.status in ('pending', 'uploaded', 'verified'))
  order by o.created_at
  limit p_limit
$$;

create or replace function private.content_expire_reservations(p_age interval) returns int
language plpgsql security definer
set search_path = ''
as $$
declare
  v_n int;
begin
  delete from content.assets a where a.status = 'pending' and a.created_at < now() - p_age;
  get diagnostics v_n = row_count;
  return v_n;
end
$$;

revoke all on function private.content_asset_uploaded(text, text),
  private.content_finish_asset(uuid, boolean, text, bigint, text, int, int, int, text),
  private.content_orphan_objects(interval, int), private.content_expire_reservations(interval) from public;
grant execute on function private.content_asset_uploaded(text, text),
  private.content_finish_asset(uuid, boolean, text, bigint, text, int, int, int, text),
  private.content_orphan_objects(interval, int), private.content_expire_reservations(interval) to service_role;
