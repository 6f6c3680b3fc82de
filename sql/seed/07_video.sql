-- Talking-video demo data: the keyless local provider first in every tier's chain (so `npm start`
-- makes videos with no provider key), a photo that passed validation in each org (its file is
-- uploaded by scripts/lib/seed-storage.ts, which validates it again), a finished video with its
-- AI job and run, and an export check of it.

do $$
begin
  if not exists (select 1 from video.tier_deployments where deployment_id = 'local/video') then
    update video.tier_deployments set position = position + 1000;
    update video.tier_deployments set position = position - 999;
    insert into video.tier_deployments (tier_key, position, deployment_id)
    select key, 0, 'local/video' from video.tiers;
  end if;
end
$$;

insert into video.uploads (id, org_id, user_id, path, filename, kind, status, mime_type, bytes, width, height, face, face_checks,
                           validated_at) values
  ('a0000000-0000-4000-8000-0000000f0001', 'a0000000-0000-4000-8000-00000000a000', 'a0000000-0000-4000-8000-000000000001',
   'a0000000-0000-4000-8000-00000000a000/demo/face.png', 'face.png', 'photo', 'passed', 'image/png', 5000, 512, 640,
   '{"x": 154, "y": 128, "width": 205, "height": 288, "score": 0.99}', 1, now()),
  ('b0000000-0000-4000-8000-0000000f0001', 'b0000000-0000-4000-8000-00000000b000', 'b0000000-0000-4000-8000-000000000001',
   'b0000000-0000-4000-8000-00000000b000/demo/face.png', 'face.png', 'photo', 'passed', 'image/png', 5000, 512, 640,
   '{"x": 154, "y": 128, "width": 205, "height": 288, "score": 0.99}', 1, now())
on conflict do nothing;

insert into ai.jobs (id, org_id, user_id, source, modality, tier, input, route, status, progress, output,
                     reserved_credits, settled_credits, provider_cost_micros, deployment_id, created_at, started_at, finished_at) values
  ('a1000000-0000-4000-8000-0000000f00a1', 'a0000000-0000-4000-8000-00000000a000', 'a0000000-0000-4000-8000-000000000001',
   'video', 'video', 'balanced',
   '{"image_path": "photos/a0000000-0000-4000-8000-00000000a000/demo/face.png", "script": {"text": "Welcome to Acme!", "voice": "en-US-JennyNeural"}, "duration_seconds": 2, "resolution": "720p", "ratio": "9:16"}',
   '{"main": [{"deployment_id": "local/video"}]}', 'succeeded', 100,
   '{"files": [], "duration_seconds": 2, "model": "local-video"}', 1, 1, 0, 'local/video', now() - interval '1 day', now() - interval '1 day', now() - interval '1 day'),
  ('b1000000-0000-4000-8000-0000000f00a1', 'b0000000-0000-4000-8000-00000000b000', 'b0000000-0000-4000-8000-000000000001',
   'video', 'video', 'economy',
   '{"image_path": "photos/b0000000-0000-4000-8000-00000000b000/demo/face.png", "script": {"text": "Globex says hello.", "voice": "en-IN-NeerjaNeural", "language": "en-IN"}, "duration_seconds": 2, "resolution": "720p", "ratio": "9:16"}',
   '{"main": [{"deployment_id": "local/video"}]}', 'succeeded', 100,
   '{"files": [], "duration_seconds": 2, "model": "local-video"}', 1, 1, 0, 'local/video', now() - interval '1 day', now() - interval '1 day', now() - interval '1 day')
on conflict do nothing;

insert into video.jobs (id, org_id, user_id, tier, photo_id, title, script, ratio, resolution, est_seconds, price_id,
                        quoted_credits, quoted_inr_minor, quoted_usd_cents, status, attempt, run, ai_job_id, progress, progress_message,
                        output_seconds, charged_credits, charged_inr_minor, charged_usd_cents, created_at, started_at, finished_at)
select v.id::uuid, v.org_id::uuid, v.user_id::uuid, v.tier, v.photo_id::uuid, v.title, v.script::jsonb, '9:16', '720p', 2, p.id,
       1, ceil(2.0 * p.inr_minor / p.per_units), ceil(2.0 * p.usd_cents / p.per_units), 'completed', 1, 1, v.ai_job_id::uuid, 100, 'done',
       2, 1, ceil(2.0 * p.inr_minor / p.per_units), ceil(2.0 * p.usd_cents / p.per_units),
       now() - interval '1 day', now() - interval '1 day', now() - interval '1 day'
from (values
  ('a0000000-0000-4000-8000-0000000f0101', 'a0000000-0000-4000-8000-00000000a000', 'a0000000-0000-4000-8000-000000000001', 'balanced',
   'a0000000-0000-4000-8000-0000000f0001', 'Welcome', '{"text": "Welcome to Acme!", "voice": "en-US-JennyNeural"}', 'a1000000-0000-4000-8000-0000000f00a1'),
  ('b0000000-0000-4000-8000-0000000f0101', 'b0000000-0000-4000-8000-00000000b000', 'b0000000-0000-4000-8000-000000000001', 'economy',
   'b0000000-0000-4000-8000-0000000f0001', 'Hello', '{"text": "Globex says hello.", "voice": "en-IN-NeerjaNeural", "language": "en-IN"}', 'b1000000-0000-4000-8000-0000000f00a1')
) as v (id, org_id, user_id, tier, photo_id, title, script, ai_job_id)
join lateral (select * from video.tier_prices tp where tp.tier_key = v.tier order by tp.effective_from desc limit 1) p on true
on conflict do nothing;

insert into video.job_runs (job_id, run, org_id, ai_job_id) values
  ('a0000000-0000-4000-8000-0000000f0101', 1, 'a0000000-0000-4000-8000-00000000a000', 'a1000000-0000-4000-8000-0000000f00a1'),
  ('b0000000-0000-4000-8000-0000000f0101', 1, 'b0000000-0000-4000-8000-00000000b000', 'b1000000-0000-4000-8000-0000000f00a1')
on conflict do nothing;

insert into video.exports (id, org_id, user_id, job_id, platform, spec_id, valid, violations, metadata, created_at)
select v.id::uuid, v.org_id::uuid, v.user_id::uuid, v.job_id::uuid, v.platform, s.id, false,
       jsonb_build_array(jsonb_build_object('rule', 'duration', 'message', 'the video lasts 2 s; shorter than the platform''s minimum',
                                            'expected', jsonb_build_object('min', s.min_seconds, 'max', s.max_seconds), 'actual', 2)),
       '{"container": "mp4", "video_codec": "h264", "audio_codec": null, "seconds": 2, "width": 720, "height": 1280, "fps": 25, "bytes": 48213, "faststart": true}',
       now() - interval '1 day'
from (values
  ('a0000000-0000-4000-8000-0000000f0201', 'a0000000-0000-4000-8000-00000000a000', 'a0000000-0000-4000-8000-000000000001', 'a0000000-0000-4000-8000-0000000f0101', 'tiktok'),
  ('b0000000-0000-4000-8000-0000000f0201', 'b0000000-0000-4000-8000-00000000b000', 'b0000000-0000-4000-8000-000000000001', 'b0000000-0000-4000-8000-0000000f0101', 'instagram_reels')
) as v (id, org_id, user_id, job_id, platform)
join video.current_platform_specs s on s.platform = v.platform
on conflict do nothing;
