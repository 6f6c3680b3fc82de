-- Demo webhooks: one endpoint per seeded org with a fresh random secret, and a delivered and a
-- failed message (with their attempts) built from each org's org.created event. Idempotent.

insert into notify.webhook_endpoints (id, org_id, url, description, event_types, created_by) values
  ('a0000000-0000-4000-8000-0000000e0001', 'a0000000-0000-4000-8000-00000000a000', 'https://example.com/hooks/acme',
   'Acme CRM sync', '{api_key.created,member.joined}', 'a0000000-0000-4000-8000-000000000001'),
  ('b0000000-0000-4000-8000-0000000e0001', 'b0000000-0000-4000-8000-00000000b000', 'https://example.com/hooks/globex',
   'Globex data warehouse', '{}', 'b0000000-0000-4000-8000-000000000001')
on conflict (id) do nothing;

insert into notify.webhook_secrets (org_id, endpoint_id, secret)
select e.org_id, e.id, private.new_webhook_secret()
from notify.webhook_endpoints e
where e.id in ('a0000000-0000-4000-8000-0000000e0001', 'b0000000-0000-4000-8000-0000000e0001')
  and not exists (select 1 from notify.webhook_secrets s where s.endpoint_id = e.id);

-- Messages for each org's first two events (demo history): the first delivered, the second failed.
insert into notify.webhook_messages (org_id, endpoint_id, event_id, status, attempt_count, next_attempt_at,
                                     last_attempt_at, last_status_code, last_error, delivered_at)
select e.org_id, e.id, ev.id, s.status, s.attempts, now() - interval '1 hour', now() - interval '1 hour',
       s.code, s.error, case when s.status = 'succeeded' then now() - interval '1 hour' end
from notify.webhook_endpoints e
cross join lateral (select x.id, row_number() over (order by x.seq) as n
                    from notify.events x where x.org_id = e.org_id order by x.seq limit 2) ev
cross join lateral (values
  (case ev.n when 1 then 'succeeded' else 'failed' end, case ev.n when 1 then 1 else 8 end,
   case ev.n when 1 then 200 else 503 end, case ev.n when 1 then null else 'HTTP 503' end)) s (status, attempts, code, error)
where e.id in ('a0000000-0000-4000-8000-0000000e0001', 'b0000000-0000-4000-8000-0000000e0001')
on conflict (endpoint_id, event_id) do nothing;

insert into notify.webhook_attempts (org_id, message_id, endpoint_id, attempt, attempted_at, status_code, latency_ms,
                                     response_snippet, error)
select m.org_id, m.id, m.endpoint_id, n, now() - interval '1 hour' - make_interval(mins => m.attempt_count - n),
       case when m.status = 'succeeded' then 200 else 503 end, 40 + n * 3,
       case when m.status = 'succeeded' then '{"ok":true}' else 'Service Unavailable' end,
       case when m.status = 'succeeded' then null else 'HTTP 503' end
from notify.webhook_messages m
cross join generate_series(1, m.attempt_count) n
where m.endpoint_id in ('a0000000-0000-4000-8000-0000000e0001', 'b0000000-0000-4000-8000-0000000e0001')
  and not exists (select 1 from notify.webhook_attempts a where a.message_id = m.id);
