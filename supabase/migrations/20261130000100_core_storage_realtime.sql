-- Core: org folders in Storage, and presence on org channels.
--
-- Storage: a module registers a bucket in private.org_buckets with the permission that reads
-- and the one that writes. Objects in such a bucket live at `<org_id>/...`, and one set of
-- policies on storage.objects grants members exactly those permissions in that folder.
-- Realtime: members may share presence (who is online) on their org's private channel.

create table private.org_buckets (
  bucket_id text primary key references storage.buckets (id) on delete cascade,
  read_permission text not null references public.permissions (key),
  write_permission text references public.permissions (key),
  module text not null,
  created_at timestamptz not null default now()
);
comment on table private.org_buckets is 'Storage buckets whose objects live in per-org folders (`<org_id>/...`). Members holding read_permission in that org read the folder; write_permission uploads, replaces and deletes. Modules register their buckets here in their migrations.';
comment on column private.org_buckets.read_permission is 'Permission (public.permissions) needed to read, list and sign URLs for objects in the org''s folder.';
comment on column private.org_buckets.write_permission is 'Permission needed to upload, overwrite, move into and delete objects in the org''s folder; null when only the service role writes (generated outputs).';
comment on column private.org_buckets.module is 'The Plinth module that owns the bucket (core, ai, content, video, ...).';

-- The org whose folder an object name is in: its first path segment, when that is a uuid.
create or replace function private.storage_org_id(p_name text) returns uuid
language sql immutable
set search_path = ''
as $$
  select case when split_part(p_name, '/', 1) ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
              then split_part(p_name, '/', 1)::uuid end
$$;

-- Whether the caller may read (p_write false) or write (true) an object of an org bucket.
-- Row-dependent, so it is called per row; it parses nothing itself and leans on
-- private.org_ids_with_permission, which reads the claims once.
create or replace function private.storage_allows(p_bucket text, p_name text, p_write boolean) returns boolean
language plpgsql stable security definer
set search_path = ''
as $$
declare
  v_org uuid := private.storage_org_id(p_name);
  v_permission text;
begin
  if v_org is null then
    return false;
  end if;
  select case when p_write then b.write_permission else b.read_permission end
    into v_permission
    from private.org_buckets b
   where b.bucket_id = p_bucket;
  if v_permission is null then
    return false;
  end if;
  return exists (select 1 from private.org_ids_with_permission(v_permission) o where o = v_org);
end
$$;
revoke all on function private.storage_org_id(text), private.storage_allows(text, text, boolean) from public;
grant execute on function private.storage_org_id(text), private.storage_allows(text, text, boolean) to authenticated;

create policy "members read their org's folder in org buckets" on storage.objects
  for select to authenticated
  using (private.storage_allows(bucket_id, name, false));
create policy "writers add to their org's folder in org buckets" on storage.objects
  for insert to authenticated
  with check (private.storage_allows(bucket_id, name, true));
create policy "writers replace in their org's folder in org buckets" on storage.objects
  for update to authenticated
  using (private.storage_allows(bucket_id, name, true))
  with check (private.storage_allows(bucket_id, name, true));
create policy "writers delete from their org's folder in org buckets" on storage.objects
  for delete to authenticated
  using (private.storage_allows(bucket_id, name, true));

-- The core's own bucket: files an org keeps (imports, attachments, exports). 50 MiB a file.
insert into storage.buckets (id, name, public, file_size_limit)
values ('org-files', 'org-files', false, 52428800)
on conflict (id) do nothing;
insert into private.org_buckets (bucket_id, read_permission, write_permission, module)
values ('org-files', 'content.read', 'content.write', 'core');

-- Presence on org:<id>: members see who else is online and may announce themselves.
create policy "members see presence on their orgs' channels" on realtime.messages
  for select to authenticated
  using (
    extension = 'presence'
    and private.topic_org_id((select realtime.topic())) in (select private.accessible_org_ids())
  );
create policy "members track presence on their orgs' channels" on realtime.messages
  for insert to authenticated
  with check (
    extension = 'presence'
    and private.topic_org_id((select realtime.topic())) in (select private.accessible_org_ids())
  );

-- Storage events: every change to an object in an org bucket goes through the outbox, so
-- members see uploads live on org:<id>, webhooks hear of them, and modules start their jobs
-- (validation, thumbnails) from one stream.
insert into notify.event_types (type, module, description, sensitive) values
  ('storage.object_created', 'storage', 'A file was uploaded into an org bucket', false),
  ('storage.object_updated', 'storage', 'A file in an org bucket was overwritten or moved', false),
  ('storage.object_deleted', 'storage', 'A file was deleted from an org bucket', false);

create or replace function private.emit_storage_events() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  v_row storage.objects := case when tg_op = 'DELETE' then old else new end;
  v_org uuid := private.storage_org_id(v_row.name);
  v_type text := case tg_op when 'INSERT' then 'storage.object_created'
                            when 'UPDATE' then 'storage.object_updated'
                            else 'storage.object_deleted' end;
begin
  if v_org is null
     or not exists (select 1 from private.org_buckets b where b.bucket_id = v_row.bucket_id)
     or not exists (select 1 from public.orgs o where o.id = v_org) then
    return null;
  end if;
  -- Touches (last_accessed_at, metadata refreshes) are not changes anyone needs to hear of.
  if tg_op = 'UPDATE' and (new.name, new.bucket_id, new.version) is not distinct from (old.name, old.bucket_id, old.version) then
    return null;
  end if;
  perform private.emit_event(v_org, v_type, 'storage_object', v_row.id::text,
    jsonb_build_object(
      'bucket_id', v_row.bucket_id,
      'name', v_row.name,
      'size', (v_row.metadata ->> 'size')::bigint,
      'mimetype', v_row.metadata ->> 'mimetype',
      'owner_id', v_row.owner_id,
      'previous_name', case when tg_op = 'UPDATE' and old.name is distinct from new.name then old.name end));
  return null;
end
$$;
revoke all on function private.emit_storage_events() from public;

create trigger emit_storage_events
  after insert or update or delete on storage.objects
  for each row execute function private.emit_storage_events();
