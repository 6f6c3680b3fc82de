-- AI demo data: the keyless local provider switched on and first in every tier (so `npm start`
-- runs jobs with no provider key), org policies and routes, an org preset, and a finished
-- batch with its jobs and attempts for acme and globex.

update ai.providers set enabled = true where id = 'local';

-- local/* first in every tier; the real providers stay behind it as fallbacks.
do $$
begin
  -- (local/vision is in the migration's default tiers already: the face check has no other provider.)
  if not exists (select 1 from ai.tiers where deployment_id like 'local/%' and modality <> 'vision') then
    update ai.tiers set position = position + 1000;
    update ai.tiers set position = position - 999;
    insert into ai.tiers (modality, tier, position, deployment_id)
    select m.modality, t.tier, 0, 'local/' || m.modality
    from (values ('text'), ('image'), ('video'), ('audio'), ('embedding'), ('moderation')) m (modality)
    cross join (values ('economy'), ('balanced'), ('premium')) t (tier);
  end if;
end
$$;

insert into ai.org_policies (org_id, allowed_tiers, allowed_models, moderate_input, monthly_credit_cap, member_monthly_credit_cap) values
  ('a0000000-0000-4000-8000-00000000a000', '{economy,balanced,premium}', null, true, 4000, 1500),
  ('b0000000-0000-4000-8000-00000000b000', '{economy,balanced}', '{local-text,local-image,gpt-4o-mini}', false, null, null)
on conflict do nothing;

-- acme pins its premium text route to the local model, then Claude.
insert into ai.org_routes (org_id, modality, tier, position, deployment_id) values
  ('a0000000-0000-4000-8000-00000000a000', 'text', 'premium', 0, 'local/text'),
  ('a0000000-0000-4000-8000-00000000a000', 'text', 'premium', 1, 'anthropic/claude-sonnet-4-5'),
  ('b0000000-0000-4000-8000-00000000b000', 'image', 'economy', 0, 'local/image')
on conflict do nothing;

insert into ai.org_presets (org_id, key, kind, modality, name, body, created_by) values
  ('a0000000-0000-4000-8000-00000000a000', 'acme-brand', 'style', 'image', 'Acme brand',
   '{"prompt_suffix": "in Acme orange (#d94f2b) and charcoal, clean geometric shapes"}', 'a0000000-0000-4000-8000-000000000001'),
  ('b0000000-0000-4000-8000-00000000b000', 'globex-voice', 'prompt_template', 'text', 'Globex voice',
   '{"system": "You write for Globex: confident, plain, no jargon.", "template": "{{prompt}}"}', 'b0000000-0000-4000-8000-000000000001')
on conflict do nothing;

insert into ai.batches (id, org_id, user_id, label, total, created_at) values
  ('a1000000-0000-4000-8000-0000000000b1', 'a0000000-0000-4000-8000-00000000a000', 'a0000000-0000-4000-8000-000000000003', 'Launch taglines', 2, now() - interval '2 days'),
  ('b1000000-0000-4000-8000-0000000000b1', 'b0000000-0000-4000-8000-00000000b000', 'b0000000-0000-4000-8000-000000000003', 'Product shots', 1, now() - interval '1 day')
on conflict do nothing;

insert into ai.jobs (id, org_id, user_id, batch_id, source, modality, tier, input, route, status, progress, output,
                     reserved_credits, settled_credits, provider_cost_micros, deployment_id, created_at, started_at, finished_at) values
  ('a1000000-0000-4000-8000-0000000000a1', 'a0000000-0000-4000-8000-00000000a000', 'a0000000-0000-4000-8000-000000000003',
   'a1000000-0000-4000-8000-0000000000b1', 'api', 'text', 'economy',
   '{"prompt": "A tagline for Acme rockets", "max_tokens": 64}', '{"main": [{"deployment_id": "local/text"}]}', 'succeeded', 100,
   '{"text": "Acme rockets: up, on time.", "finish_reason": "stop", "usage": {"input_tokens": 7, "output_tokens": 6}}',
   1, 1, 0, 'local/text', now() - interval '2 days', now() - interval '2 days', now() - interval '2 days'),
  ('a1000000-0000-4000-8000-0000000000a2', 'a0000000-0000-4000-8000-00000000a000', 'a0000000-0000-4000-8000-000000000003',
   'a1000000-0000-4000-8000-0000000000b1', 'api', 'text', 'economy',
   '{"prompt": "A tagline for Acme anvils", "max_tokens": 64}', '{"main": [{"deployment_id": "local/text"}]}', 'failed', 0, null,
   1, 0, 0, null, now() - interval '2 days', now() - interval '2 days', now() - interval '2 days'),
  ('b1000000-0000-4000-8000-0000000000a1', 'b0000000-0000-4000-8000-00000000b000', 'b0000000-0000-4000-8000-000000000003',
   'b1000000-0000-4000-8000-0000000000b1', 'api', 'image', 'economy',
   '{"prompt": "A Globex widget on white", "n": 1, "size": "512x512"}', '{"main": [{"deployment_id": "local/image"}]}', 'succeeded', 100,
   '{"files": []}', 2, 2, 0, 'local/image', now() - interval '1 day', now() - interval '1 day', now() - interval '1 day')
on conflict do nothing;
update ai.jobs set error = '{"code": "server", "message": "the provider failed and no fallback was left", "class": "server"}'
where id = 'a1000000-0000-4000-8000-0000000000a2' and error is null;

insert into ai.attempts (job_id, org_id, attempt_no, kind, deployment_id, provider_id, provider_model, status, units,
                         provider_cost_micros, credits, billed, latency_ms, started_at, finished_at,
                         error_class, http_status) values
  ('a1000000-0000-4000-8000-0000000000a1', 'a0000000-0000-4000-8000-00000000a000', 1, 'initial', 'local/text', 'local', 'local-text',
   'succeeded', '{"input_token": 7, "output_token": 6}', 0, 1, true, 3, now() - interval '2 days', now() - interval '2 days', null, 200),
  ('a1000000-0000-4000-8000-0000000000a2', 'a0000000-0000-4000-8000-00000000a000', 1, 'initial', 'local/text', 'local', 'local-text',
   'failed', '{}', 0, 0, false, 5, now() - interval '2 days', now() - interval '2 days', 'server', 500),
  ('b1000000-0000-4000-8000-0000000000a1', 'b0000000-0000-4000-8000-00000000b000', 1, 'initial', 'local/image', 'local', 'local-image',
   'succeeded', '{"image": 1}', 0, 2, true, 12, now() - interval '1 day', now() - interval '1 day', null, 200)
on conflict do nothing;
