-- Talking videos (TalkingPhoto), part 1: the schema, the plan limits, and photo (and voice)
-- uploads. Files arrive in the org's folder of the `photos` bucket by resumable (TUS) upload or
-- a signed upload URL; the storage event starts a validation job (format from the magic bytes,
-- size, pixel dimensions, aspect ratio, a face check through the AI gateway) before anything is
-- paid for. A rejection is free and says why. Deletion is soft; a retention job purges.

create schema if not exists video;
grant usage on schema video to authenticated, service_role;
comment on schema video is 'Plinth talking-video product: validated photo uploads, video jobs by quality tier priced per second, platform export checks, privacy export and erasure.';

insert into billing.entitlements (plan_key, key, enabled, limit_value, description) values
  ('free', 'video_jobs_per_day', true, 5, 'Talking videos an org may start per UTC day'),
  ('free', 'video_max_seconds', true, 30, 'Longest talking video the plan makes, in seconds'),
  ('free', 'video_concurrent_jobs', true, 1, 'Talking videos in progress at once, per org'),
  ('free', 'video_generations_per_hour', true, 10, 'Talking videos a member may start per hour (a token bucket)'),
  ('pro', 'video_jobs_per_day', true, 50, 'Talking videos an org may start per UTC day'),
  ('pro', 'video_max_seconds', true, 120, 'Longest talking video the plan makes, in seconds'),
  ('pro', 'video_concurrent_jobs', true, 3, 'Talking videos in progress at once, per org'),
  ('pro', 'video_generations_per_hour', true, 10, 'Talking videos a member may start per hour (a token bucket)'),
  ('team', 'video_jobs_per_day', true, 200, 'Talking videos an org may start per UTC day'),
  ('team', 'video_max_seconds', true, 300, 'Longest talking video the plan makes, in seconds'),
  ('team', 'video_concurrent_jobs', true, 10, 'Talking videos in progress at once, per org'),
  ('team', 'video_generations_per_hour', true, 10, 'Talking videos a member may start per hour (a token bucket)');

-- Photos and voice tracks: members read their org's folder (content.read) and upload into it
-- (content.write). 20 MiB a file at most; the validation refuses photos above 10 MiB.
insert into storage.buckets (id, name, public, file_size_limit)
values ('photos', 'photos', false, 20971520)
on conflict (id) do nothing;
insert into private.org_buckets (bucket_id, read_permission, write_permission, module)
values ('photos', 'content.read', 'content.write', 'video');

create table video.uploads (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null references public.orgs (id) on delete cascade,
  user_id uuid references auth.users (id) on delete set null,
  bucket text not null default 'photos' check (bucket = 'photos'),
  path text not null check (length(path) between 38 and 1024),
  filename text not null check (length(filename) between 1 and 255),
  kind text check (kind in ('photo', 'audio')),
  status text not null default 'pending' check (status in ('pending', 'validating', 'checking_face', 'passed', 'rejected')),
  mime_type text,
  bytes bigint check (bytes >= 0),
  width int check (width > 0),
  height int check (height > 0),
  duration_ms int check (duration_ms >= 0),
  sha256 text check (sha256 ~ '^[0-9a-f]{64}$'),
  face jsonb,
  face_job_id uuid references ai.jobs (id) on delete set null,
  face_checks int not null default 0 check (face_checks >= 0),
  reject_code text check (reject_code in ('format', 'size', 'too_small', 'too_large', 'aspect_ratio', 'no_face', 'face_refused',
                                          'face_check_unavailable', 'audio_length', 'missing')),
  reject_reason text,
  validated_at timestamptz,
  deleted_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (bucket, path),
  check ((status = 'rejected') = (reject_code is not null))
);
create index uploads_org_idx on video.uploads (org_id, created_at desc);
create index uploads_user_idx on video.uploads (user_id, created_at desc);
create index uploads_face_job_idx on video.uploads (face_job_id);
create index uploads_deleted_idx on video.uploads (deleted_at) where deleted_at is not null;
comment on table video.uploads is 'A photo (or a voice track) for talking videos, in the photos bucket at path (<org_id>/...). The validation job fills in what the bytes really are and the verdict; only a photo that passed can start a video. Deletion is soft (deleted_at); the retention job removes the file and the row 30 days later.';
comment on column video.uploads.user_id is 'Who uploaded it: the member who reserved the path (video.create_upload), else the Storage object''s owner.';
comment on column video.uploads.path is 'The object''s name in the bucket: <org_id>/<user_id>/<file>.';
comment on column video.uploads.filename is 'The file''s name as the member gave it (the last path segment for direct uploads).';
comment on column video.uploads.kind is 'photo (JPEG, PNG or WebP) or audio (a voice track: WAV, MP3 or M4A), from the magic bytes; null until validated.';
comment on column video.uploads.status is 'pending (path reserved, no bytes yet), validating (the file is checked), checking_face (the AI gateway looks for a face), passed, or rejected (reject_code and reject_reason say why; nothing was charged).';
comment on column video.uploads.mime_type is 'The type the magic bytes show (never the declared one).';
comment on column video.uploads.duration_ms is 'A voice track''s length, from its header.';
comment on column video.uploads.face is 'The face check''s answer: {"x", "y", "width", "height"} in pixels of the largest face, its score, and the AI job that found it.';
comment on column video.uploads.face_job_id is 'The AI gateway job (modality vision) of the latest face check.';
comment on column video.uploads.face_checks is 'Face checks started for this file; after 3 that could not answer (provider failures, not refusals) the upload is rejected as face_check_unavailable.';
comment on column video.uploads.reject_code is 'Why it was rejected: format, size, too_small, too_large, aspect_ratio, no_face, face_refused, face_check_unavailable, audio_length, missing.';
comment on column video.uploads.reject_reason is 'The rejection in a sentence the uploader can act on.';
comment on column video.uploads.deleted_at is 'Soft deletion: hidden from listings and unusable for new videos; purged by the retention job after 30 days.';

create trigger uploads_updated_at before update on video.uploads for each row execute function private.set_updated_at();

alter table video.uploads enable row level security;
revoke all on video.uploads from anon, authenticated;
grant all on video.uploads to service_role;
grant select on video.uploads to authenticated;
-- Writes go through video.create_upload / video.delete_upload and the validation job.
create policy "readers see their org's uploads" on video.uploads
  for select to authenticated
  using (org_id in (select private.org_ids_with_permission('content.read')));

insert into notify.event_types (type, module, description, sensitive) values
  ('video.upload_validated', 'video', 'A photo or voice track passed validation and can be used for talking videos', false),
  ('video.upload_rejected', 'video', 'An upload failed validation; the reason says why (nothing was charged)', false);

-- Status changes go live to the uploader (user:<id>), and verdicts through the outbox.
create or replace function private.video_upload_changed() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  if tg_op = 'UPDATE' and new.status is not distinct from old.status then
    return null;
  end if;
  if new.user_id is not null then
    perform realtime.send(
      jsonb_build_object('upload_id', new.id, 'status', new.status, 'kind', new.kind, 'reject_code', new.reject_code,
                         'reject_reason', new.reject_reason, 'face', new.face),
      'video.upload', 'user:' || new.user_id, true);
  end if;
  if new.status in ('passed', 'rejected') then
    perform private.emit_event(new.org_id,
      case new.status when 'passed' then 'video.upload_validated' else 'video.upload_rejected' end,
      'video_upload', new.id::text,
      jsonb_build_object('upload_id', new.id, 'kind', new.kind, 'user_id', new.user_id,
                         'reject_code', new.reject_code, 'reject_reason', new.reject_reason));
  end if;
  return null;
end
$$;
revoke all on function private.video_upload_changed() from public;
create trigger uploads_changed after insert or update on video.uploads
  for each row execute function private.video_upload_changed();

-- ---------------------------------------------------------------------------
-- RPCs
-- ---------------------------------------------------------------------------

/*
 * Reserves a path in the org's photos folder for the caller's next upload (needs content.write).
 * Upload to the returned path by TUS or a signed upload URL; the upload's arrival starts its
 * validation. The file name is kept for display; the path gets a fresh id so names never clash.
 */
create or replace function video.create_upload(p_org_id uuid, p_filename text) returns video.uploads
language plpgsql security definer
set search_path = ''
as $$
declare
  v_row video.uploads;
  v_name text := regexp_replace(coalesce(p_filename, ''), '[^A-Za-z0-9._-]+', '-', 'g');
begin
  if auth.uid() is null then
    raise exception 'uploads are made by signed-in members' using errcode = '42501';
  end if;
  if p_filename is null or length(p_filename) not between 1 and 255 or p_filename ~ '[/\\[:cntrl:]]' then
    raise exception 'give a file name of 1 to 255 characters without slashes' using errcode = '22023';
  end if;
  if not private.has_permission(p_org_id, 'content.write') then
    raise exception 'you need content.write in this org to upload' using errcode = '42501';
  end if;
  insert into video.uploads (org_id, user_id, path, filename)
  values (p_org_id, auth.uid(), p_org_id || '/' || auth.uid() || '/' || gen_random_uuid() || '-' || right(trim(both '-' from v_name), 100),
          p_filename)
  returning * into v_row;
  return v_row;
end
$$;
comment on function video.create_upload(uuid, text) is 'Reserves a path in the org''s photos folder for an upload by the caller (content.write); upload the file there by TUS or a signed upload URL.';

/*
 * Soft-deletes an upload: it disappears from listings and cannot start new videos; the file is
 * purged 30 days later. The uploader, or a member with content.write, may; idempotent.
 */
create or replace function video.delete_upload(p_upload_id uuid) returns video.uploads
language plpgsql security definer
set search_path = ''
as $$
declare
  v_row video.uploads;
begin
  select * into v_row from video.uploads where id = p_upload_id for update;
  if not found or not coalesce(
       (v_row.user_id = auth.uid() and v_row.org_id in (select private.accessible_org_ids()))
       or private.has_permission(v_row.org_id, 'content.write'), false) then
    raise exception 'upload not found' using errcode = 'PT404';
  end if;
  update video.uploads set deleted_at = coalesce(deleted_at, now()) where id = p_upload_id returning * into v_row;
  return v_row;
end
$$;
comment on function video.delete_upload(uuid) is 'Soft-deletes an upload (the uploader or content.write); the retention job purges it 30 days later.';

/*
 * The worker's side (outbox consumer "video-uploads"): a file arrived in the photos bucket. Its
 * reserved row, or a new one (a direct upload: the object's owner uploaded it), goes back to
 * validating; returns its id, or null when the file is not an upload (outside an org folder,
 * soft-deleted, or its org is gone).
 */
create or replace function private.video_upload_arrived(p_name text, p_owner uuid) returns uuid
language plpgsql security definer
set search_path = ''
as $$
declare
  v_org uuid := private.storage_org_id(p_name);
  v_id uuid;
begin
  if v_org is null or not exists (select 1 from public.orgs o where o.id = v_org) then
    return null;
  end if;
  insert into video.uploads (org_id, user_id, path, filename, status)
  values (v_org, p_owner, p_name, right(regexp_replace(p_name, '^.*/', ''), 255), 'validating')
  on conflict (bucket, path) do update
    set status = 'validating', kind = null, reject_code = null, reject_reason = null, face = null, face_checks = 0,
        validated_at = null
    where video.uploads.deleted_at is null
  returning id into v_id;
  return v_id;
end
$$;
revoke all on function private.video_upload_arrived(text, uuid) from public;
grant execute on function private.video_upload_arrived(text, uuid) to service_role;

revoke all on function video.create_upload(uuid, text), video.delete_upload(uuid) from public, anon;
grant execute on function video.create_upload(uuid, text), video.delete_upload(uuid) to authenticated, service_role;
