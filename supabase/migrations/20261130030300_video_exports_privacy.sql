-- Talking videos, part 3: export workflows (versioned platform specs citing their sources,
-- export templates with step-by-step instructions, and each member's export checks) and
-- privacy requests (an archive of a member's video data; erasure with a receipt per provider copy).

create table video.platform_specs (
  id uuid primary key default gen_random_uuid(),
  platform text not null check (platform in ('tiktok', 'instagram_reels', 'youtube_shorts', 'linkedin', 'whatsapp_status')),
  version int not null check (version > 0),
  valid_from timestamptz not null,
  containers text[] not null check (containers <@ array['mp4', 'mov', 'webm']),
  video_codecs text[] not null check (video_codecs <@ array['h264', 'hevc', 'vp8', 'vp9', 'av1']),
  audio_codecs text[] not null check (audio_codecs <@ array['aac', 'mp3', 'opus']),
  min_seconds numeric check (min_seconds >= 0),
  max_seconds numeric check (max_seconds > 0),
  min_width int check (min_width > 0),
  min_height int check (min_height > 0),
  max_width int check (max_width > 0),
  max_height int check (max_height > 0),
  aspect_ratios text[] check (aspect_ratios <@ array['9:16', '16:9', '1:1', '4:5']),
  min_aspect numeric check (min_aspect > 0),
  max_aspect numeric check (max_aspect > 0),
  min_fps numeric check (min_fps > 0),
  max_fps numeric check (max_fps > 0),
  max_bytes bigint check (max_bytes > 0),
  requires_faststart boolean not null default false,
  notes text not null default '',
  source_url text not null check (source_url ~ '^https://'),
  source_title text not null,
  created_at timestamptz not null default now(),
  unique (platform, version),
  unique (platform, valid_from)
);
comment on table video.platform_specs is 'What each platform accepts, as versioned rows citing their sources. A spec is never edited: when a platform changes (YouTube Shorts went from 60 s to 3 min), add a version with its valid_from. The validator checks a finished video against the version in force.';
comment on column video.platform_specs.version is 'Per platform, from 1.';
comment on column video.platform_specs.valid_from is 'When the platform started applying this version; the latest one not in the future is in force.';
comment on column video.platform_specs.containers is 'Accepted containers (mp4, mov, webm).';
comment on column video.platform_specs.video_codecs is 'Accepted video codecs (h264, hevc, vp8, vp9, av1).';
comment on column video.platform_specs.audio_codecs is 'Accepted audio codecs when there is sound (aac, mp3, opus).';
comment on column video.platform_specs.min_seconds is 'Shortest accepted duration; null = no minimum.';
comment on column video.platform_specs.max_seconds is 'Longest accepted duration; null = no maximum.';
comment on column video.platform_specs.min_width is 'Fewest pixels across (null = any).';
comment on column video.platform_specs.aspect_ratios is 'Accepted aspect ratios (within 2 %); null = any, or the range min_aspect..max_aspect.';
comment on column video.platform_specs.min_aspect is 'Narrowest accepted width/height when the platform gives a range (LinkedIn: 1/2.4).';
comment on column video.platform_specs.max_aspect is 'Widest accepted width/height when the platform gives a range (LinkedIn: 2.4).';
comment on column video.platform_specs.max_bytes is 'Largest accepted file.';
comment on column video.platform_specs.requires_faststart is 'The moov atom must come before the media data (Instagram).';
comment on column video.platform_specs.notes is 'Caveats: conflicting sources, regional differences, secondary sources to confirm.';
comment on column video.platform_specs.source_url is 'Where the numbers come from.';
comment on column video.platform_specs.source_title is 'The source''s title (and whether it is the platform''s own or secondary).';
create trigger platform_specs_append_only before update on video.platform_specs for each row execute function private.video_append_only();

insert into video.platform_specs (platform, version, valid_from, containers, video_codecs, audio_codecs, min_seconds, max_seconds,
  min_width, min_height, max_width, max_height, aspect_ratios, min_aspect, max_aspect, min_fps, max_fps, max_bytes,
  requires_faststart, notes, source_url, source_title) values
  ('tiktok', 1, '2024-01-01', '{mp4,mov,webm}', '{h264,hevc,vp8,vp9}', '{aac,mp3,opus}', 3, 600, 360, 360, 4096, 4096,
   '{9:16,16:9}', null, null, 23, 60, 1073741824, false,
   'Max size is 1 GB in the English page and 10 GB in its translations: confirm with TikTok.',
   'https://www.ayrshare.com/docs/media-guidelines/tiktok', 'Ayrshare media guidelines: TikTok (secondary)'),
  ('instagram_reels', 1, '2024-01-01', '{mp4,mov}', '{h264,hevc}', '{aac}', 3, 900, 540, 960, 1920, null,
   '{9:16}', null, null, 23, 60, 314572800, true,
   'Moov atom at the front, no edit lists, AAC at most 48 kHz; 300 MB in the English page, 1 GB in translations.',
   'https://www.ayrshare.com/docs/media-guidelines/instagram.md', 'Ayrshare media guidelines: Instagram (secondary)'),
  ('youtube_shorts', 1, '2021-07-12', '{mp4,mov,webm}', '{h264,hevc,vp9,av1}', '{aac,opus}', null, 60, null, null, null, null,
   '{9:16,1:1}', null, null, null, null, null, false,
   'Square or vertical, up to 60 seconds.',
   'https://google-support.mirrorblogs.com/youtube/answer/15424877?hl=en-GB', 'YouTube Help 15424877 (mirror)'),
  ('youtube_shorts', 2, '2024-10-15', '{mp4,mov,webm}', '{h264,hevc,vp9,av1}', '{aac,opus}', null, 180, null, null, null, null,
   '{9:16,1:1}', null, null, null, null, null, false,
   'Up to 3 minutes for uploads on or after 15 October 2024; Shorts over a minute with an active Content ID claim are blocked.',
   'https://google-support.mirrorblogs.com/youtube/answer/15424877?hl=en-GB', 'YouTube Help 15424877 (mirror)'),
  ('linkedin', 1, '2024-01-01', '{mp4}', '{h264}', '{aac}', 3, 600, 256, 144, 4096, 2304,
   null, 0.4167, 2.4, null, 60, 5368709120, false,
   'Feed videos: any ratio from 1:2.4 to 2.4:1; some guides give 15 minutes rather than 10: confirm with LinkedIn.',
   'https://blog.sendspark.com/linkedin-video-specs', 'Sendspark: LinkedIn video specs (secondary)'),
  ('whatsapp_status', 1, '2017-02-20', '{mp4}', '{h264}', '{aac}', null, 30, null, null, null, null,
   null, null, null, null, null, 16777216, false,
   'Status videos up to 30 seconds and 16 MB.',
   'https://indianexpress.com/article/technology/tech-news-technology/whatsapp-status-video-15-seconds-time-limit-india-coronavirus-6337491/',
   'Indian Express, 29 March 2020 (secondary)'),
  ('whatsapp_status', 2, '2020-03-29', '{mp4}', '{h264}', '{aac}', null, 15, null, null, null, null,
   null, null, null, null, null, 16777216, false,
   'Cut to 15 seconds in India to ease server load, announced as temporary.',
   'https://indianexpress.com/article/technology/tech-news-technology/whatsapp-status-video-15-seconds-time-limit-india-coronavirus-6337491/',
   'Indian Express, 29 March 2020 (secondary)'),
  ('whatsapp_status', 3, '2024-03-01', '{mp4}', '{h264}', '{aac}', null, 60, null, null, null, null,
   null, null, null, null, null, 16777216, false,
   'Raised to 60 seconds in early 2024 (date approximate); still 16 MB. Confirm with WhatsApp.',
   'https://dev.to/_86503f9db86f1485a6f10/common-misconceptions-about-whatsapp-status-video-length-and-size-limit-1209',
   'DEV Community: WhatsApp Status video length and size limit (secondary)');

create view video.current_platform_specs with (security_invoker = true) as
select distinct on (s.platform) s.*
from video.platform_specs s
where s.valid_from <= now()
order by s.platform, s.valid_from desc;
comment on view video.current_platform_specs is 'The spec version in force for each platform.';

create table video.export_templates (
  platform text primary key check (platform in ('tiktok', 'instagram_reels', 'youtube_shorts', 'linkedin', 'whatsapp_status')),
  name text not null,
  caption_rules jsonb not null,
  safe_zones jsonb not null,
  checklist text[] not null,
  instructions text[] not null,
  updated_at timestamptz not null default now()
);
comment on table video.export_templates is 'How to publish on each platform: caption rules, the safe zones (fractions of the frame the platform''s buttons cover), a checklist and step-by-step instructions. Admin-edited.';
comment on column video.export_templates.caption_rules is '{"max_chars", "max_hashtags"?, "notes"}.';
comment on column video.export_templates.safe_zones is 'Margins to keep free of text and faces, as fractions of the frame: {"top", "bottom", "left", "right"}.';
comment on column video.export_templates.checklist is 'What to check before posting.';
comment on column video.export_templates.instructions is 'The steps to publish, in order.';
create trigger export_templates_updated_at before update on video.export_templates for each row execute function private.set_updated_at();

insert into video.export_templates (platform, name, caption_rules, safe_zones, checklist, instructions) values
  ('tiktok', 'TikTok',
   '{"max_chars": 2200, "max_hashtags": 5, "notes": "Put the hook in the first line; captions over the video stay inside the safe zone."}',
   '{"top": 0.1, "bottom": 0.2, "left": 0.05, "right": 0.15}',
   '{"Vertical 9:16 at 1080x1920","The face and any text inside the safe zone","Under 10 minutes","Sound on: the voice is the point"}',
   '{"Download the video from Plinth (the download link lasts an hour)","Open TikTok and tap + to create","Tap Upload and choose the video","Add the caption and up to five hashtags","Choose who can watch, then Post"}'),
  ('instagram_reels', 'Instagram Reels',
   '{"max_chars": 2200, "max_hashtags": 30, "notes": "The first 125 characters show before \"more\"."}',
   '{"top": 0.14, "bottom": 0.35, "left": 0.06, "right": 0.06}',
   '{"Vertical 9:16, at least 540x960","Fast start (moov first)","Between 3 seconds and 15 minutes","Cover frame chosen"}',
   '{"Download the video from Plinth","In Instagram tap + then Reel","Pick the video from the gallery","Trim if needed and tap Next","Write the caption, pick a cover, then Share"}'),
  ('youtube_shorts', 'YouTube Shorts',
   '{"max_chars": 100, "notes": "The title is the caption; add #Shorts to the title or description."}',
   '{"top": 0.1, "bottom": 0.25, "left": 0.05, "right": 0.15}',
   '{"Vertical or square","Up to 3 minutes (60 seconds before 15 October 2024)","No Content ID claims if over a minute"}',
   '{"Download the video from Plinth","In the YouTube app tap + then Upload a video","Choose the video; it is a Short when vertical or square and within the length","Add a title with #Shorts","Set visibility and Upload"}'),
  ('linkedin', 'LinkedIn',
   '{"max_chars": 3000, "max_hashtags": 3, "notes": "Professional tone; burn in captions, as most watch muted."}',
   '{"top": 0.05, "bottom": 0.1, "left": 0.05, "right": 0.05}',
   '{"MP4 with H.264 and AAC","Between 3 seconds and 10 minutes","Ratio between 1:2.4 and 2.4:1 (1:1 or 4:5 for the feed)"}',
   '{"Download the video from Plinth","On LinkedIn click Start a post, then Video","Upload the file and add captions if you have them","Write the post text","Post"}'),
  ('whatsapp_status', 'WhatsApp Status',
   '{"max_chars": 700, "notes": "Status captions are short; the video disappears after 24 hours."}',
   '{"top": 0.1, "bottom": 0.15, "left": 0.05, "right": 0.05}',
   '{"Under 16 MB","Up to 60 seconds (longer ones are split)","Vertical looks best"}',
   '{"Download the video to the phone","Open WhatsApp, go to Updates and tap the camera","Choose the video from the gallery","Add a caption","Send to your status"}');

create table video.exports (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null references public.orgs (id) on delete cascade,
  user_id uuid not null references auth.users (id) on delete cascade,
  job_id uuid not null references video.jobs (id) on delete cascade,
  platform text not null check (platform in ('tiktok', 'instagram_reels', 'youtube_shorts', 'linkedin', 'whatsapp_status')),
  spec_id uuid not null references video.platform_specs (id),
  valid boolean not null,
  violations jsonb not null default '[]',
  metadata jsonb not null,
  optimize_job_id uuid references ai.jobs (id) on delete set null,
  created_at timestamptz not null default now()
);
create index exports_org_idx on video.exports (org_id, created_at desc);
create index exports_user_idx on video.exports (user_id, created_at desc);
create index exports_job_idx on video.exports (job_id);
create index exports_spec_idx on video.exports (spec_id);
create index exports_optimize_job_idx on video.exports (optimize_job_id);
comment on table video.exports is 'A member''s export checks: a finished video against a platform''s spec in force, with every violation and the file''s real metadata; the history is kept per member.';
comment on column video.exports.spec_id is 'The spec version checked against.';
comment on column video.exports.valid is 'No violation.';
comment on column video.exports.violations is '[{"rule", "message", "expected", "actual"}], one per broken rule.';
comment on column video.exports.metadata is 'What the file is, read from its boxes: container, codecs, seconds, width, height, fps, bytes, faststart.';
comment on column video.exports.optimize_job_id is 'The AI job (text) asked for an optimization suggestion, if any.';

alter table video.platform_specs enable row level security;
alter table video.export_templates enable row level security;
alter table video.exports enable row level security;
revoke all on video.platform_specs, video.export_templates, video.exports, video.current_platform_specs from anon, authenticated;
grant all on video.platform_specs, video.export_templates, video.exports to service_role;
grant select on video.current_platform_specs to service_role;
grant select on video.platform_specs, video.export_templates, video.exports, video.current_platform_specs to authenticated;
create policy "signed-in users read platform specs" on video.platform_specs for select to authenticated using (true);
create policy "signed-in users read export templates" on video.export_templates for select to authenticated using (true);
-- Writes go through the api (the validator reads the file in the function).
create policy "members read their own exports" on video.exports
  for select to authenticated
  using (user_id = (select auth.uid()) and org_id in (select private.accessible_org_ids()));

-- ---------------------------------------------------------------------------
-- Privacy requests
-- ---------------------------------------------------------------------------

create table video.privacy_requests (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references auth.users (id) on delete cascade,
  kind text not null check (kind in ('export', 'erasure')),
  status text not null default 'queued' check (status in ('queued', 'running', 'done', 'failed')),
  archive_path text,
  archive_bytes bigint check (archive_bytes >= 0),
  summary jsonb not null default '{}',
  error text,
  created_at timestamptz not null default now(),
  finished_at timestamptz,
  updated_at timestamptz not null default now()
);
create index privacy_requests_user_idx on video.privacy_requests (user_id, created_at desc);
comment on table video.privacy_requests is 'A member''s request about their own talking-video data in every org: export (one archive of profile, uploads, jobs and outputs, behind a signed URL) or erasure (files deleted, each provider asked to delete its copy, inputs forgotten). Running either again is harmless.';
comment on column video.privacy_requests.archive_path is 'The export archive in the privacy-exports bucket (<user_id>/<request_id>.zip); served by signed URL only.';
comment on column video.privacy_requests.summary is 'What was done: counts of files, jobs, provider deletions.';

create table video.deletion_receipts (
  id uuid primary key default gen_random_uuid(),
  request_id uuid not null references video.privacy_requests (id) on delete cascade,
  user_id uuid not null references auth.users (id) on delete cascade,
  provider_id text not null,
  provider_task_id text not null,
  status text not null check (status in ('deleted', 'not_supported', 'failed')),
  detail text,
  attempts int not null default 1 check (attempts > 0),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (provider_id, provider_task_id)
);
create index deletion_receipts_request_idx on video.deletion_receipts (request_id);
create index deletion_receipts_user_idx on video.deletion_receipts (user_id);
comment on table video.deletion_receipts is 'One per provider copy an erasure asked to delete: deleted (the provider confirmed, or it was already gone), not_supported (the provider has no delete: its own retention applies, in detail), or failed (asked again on the next run).';
comment on column video.deletion_receipts.provider_task_id is 'The provider''s id of the task whose inputs and output it holds.';

create trigger privacy_requests_updated_at before update on video.privacy_requests for each row execute function private.set_updated_at();
create trigger deletion_receipts_updated_at before update on video.deletion_receipts for each row execute function private.set_updated_at();

-- Progress goes live to the member.
create or replace function private.video_privacy_changed() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  if tg_op = 'UPDATE' and new.status is not distinct from old.status then
    return null;
  end if;
  perform realtime.send(jsonb_build_object('request_id', new.id, 'kind', new.kind, 'status', new.status, 'error', new.error),
                        'video.privacy', 'user:' || new.user_id, true);
  return null;
end
$$;
revoke all on function private.video_privacy_changed() from public;
create trigger privacy_requests_changed after insert or update on video.privacy_requests
  for each row execute function private.video_privacy_changed();

alter table video.privacy_requests enable row level security;
alter table video.deletion_receipts enable row level security;
revoke all on video.privacy_requests, video.deletion_receipts from anon, authenticated;
grant all on video.privacy_requests, video.deletion_receipts to service_role;
grant select on video.privacy_requests, video.deletion_receipts to authenticated;
create policy "members read their own privacy requests" on video.privacy_requests
  for select to authenticated using (user_id = (select auth.uid()));
create policy "members read their own deletion receipts" on video.deletion_receipts
  for select to authenticated using (user_id = (select auth.uid()));

-- Archives: no org folder and no policy, so only the service role (the worker, the api's signed
-- URLs) ever reaches them.
insert into storage.buckets (id, name, public, file_size_limit)
values ('privacy-exports', 'privacy-exports', false, null)
on conflict (id) do nothing;

/*
 * Opens a privacy request for the caller; an open one of the same kind is returned instead of
 * a second (the api queues its job).
 */
create or replace function video.request_privacy(p_kind text) returns video.privacy_requests
language plpgsql security definer
set search_path = ''
as $$
declare
  v video.privacy_requests;
begin
  if auth.uid() is null then
    raise exception 'privacy requests are made by signed-in members' using errcode = '42501';
  end if;
  if p_kind is null or p_kind not in ('export', 'erasure') then
    raise exception 'kind is export or erasure' using errcode = '22023';
  end if;
  perform pg_advisory_xact_lock(hashtextextended('video.privacy:' || auth.uid(), 0));
  select * into v from video.privacy_requests r
  where r.user_id = auth.uid() and r.kind = p_kind and r.status in ('queued', 'running') order by r.created_at desc limit 1;
  if found then
    return v;
  end if;
  insert into video.privacy_requests (user_id, kind) values (auth.uid(), p_kind) returning * into v;
  return v;
end
$$;
comment on function video.request_privacy(text) is 'Opens an export or erasure of the caller''s talking-video data (the api queues it).';
revoke all on function video.request_privacy(text) from public, anon;
grant execute on function video.request_privacy(text) to authenticated, service_role;

comment on column video.platform_specs.id is 'The version''s id (exports point at it).';
comment on column video.platform_specs.platform is 'tiktok, instagram_reels, youtube_shorts, linkedin or whatsapp_status.';
comment on column video.platform_specs.min_height is 'Fewest pixels down (null = any).';
comment on column video.platform_specs.max_width is 'Most pixels across (null = any).';
comment on column video.platform_specs.max_height is 'Most pixels down (null = any).';
comment on column video.platform_specs.min_fps is 'Lowest accepted frame rate.';
comment on column video.platform_specs.max_fps is 'Highest accepted frame rate.';
comment on column video.platform_specs.created_at is 'When the row was added.';
comment on column video.export_templates.platform is 'The platform.';
comment on column video.export_templates.name is 'Shown in pickers.';
comment on column video.export_templates.updated_at is 'Last change (set by trigger).';
comment on column video.exports.org_id is 'The video''s org.';
comment on column video.exports.user_id is 'The member who checked it.';
comment on column video.exports.job_id is 'The video checked.';
comment on column video.exports.platform is 'The platform checked for.';
comment on column video.exports.created_at is 'When it was checked.';
comment on column video.privacy_requests.user_id is 'The member whose data it is.';
comment on column video.privacy_requests.kind is 'export or erasure.';
comment on column video.privacy_requests.status is 'queued, running, done or failed.';
comment on column video.privacy_requests.archive_bytes is 'The archive''s size.';
comment on column video.privacy_requests.error is 'Why it failed (it can be asked for again).';
comment on column video.privacy_requests.created_at is 'When it was asked for.';
comment on column video.privacy_requests.finished_at is 'When it ended.';
comment on column video.privacy_requests.updated_at is 'Last change (set by trigger).';
comment on column video.deletion_receipts.request_id is 'The erasure that asked (the first, when several ran).';
comment on column video.deletion_receipts.user_id is 'The member whose data it was.';
comment on column video.deletion_receipts.provider_id is 'The AI provider (ai.providers.id).';
comment on column video.deletion_receipts.status is 'deleted, not_supported or failed.';
comment on column video.deletion_receipts.detail is 'The provider''s answer, or why it cannot delete.';
comment on column video.deletion_receipts.attempts is 'How many times it was asked.';
comment on column video.deletion_receipts.created_at is 'When it was first asked.';
comment on column video.deletion_receipts.updated_at is 'When it was last asked.';
