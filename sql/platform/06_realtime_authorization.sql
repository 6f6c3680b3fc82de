-- Local stand-in for Realtime's authorization checks on private channels, the way the server
-- runs them: the caller's role, JWT claims and `realtime.topic` (the sub-topic, without
-- `realtime:`) are set locally, and RLS on realtime.messages decides.
--   can_receive: a probe message for the topic is inserted by the privileged caller, then read
--                back as the client; a visible probe means the SELECT policies let it receive.
--   can_send:    the client inserts a probe itself; success means the INSERT policies let it
--                send, 42501 means they do not.
-- Both run inside a block that always ends in a private exception, so the probe, the role
-- switch and the settings are rolled back with the subtransaction: nothing is committed, so a
-- probe never reaches logical replication (and never a subscriber), whatever the caller does
-- with its own transaction. The Realtime stand-in (scripts/platform/realtime) and the tests
-- call these; they answer what production would.
-- (No SET clause on purpose: a function with one may not switch roles.)
create or replace function realtime.can_receive(p_claims jsonb, p_topic text, p_extension text default 'broadcast')
returns boolean
language plpgsql volatile
as $$
declare
  v_probe uuid := gen_random_uuid();
  v_ok boolean := false;
begin
  begin
    insert into realtime.messages (id, topic, extension, private, payload, event)
    values (v_probe, p_topic, p_extension, true, '{}', 'authorization_probe');
    perform pg_catalog.set_config('request.jwt.claims', p_claims::text, true);
    perform pg_catalog.set_config('request.jwt.claim.sub', coalesce(p_claims ->> 'sub', ''), true);
    perform pg_catalog.set_config('request.jwt.claim.role', coalesce(p_claims ->> 'role', 'anon'), true);
    perform pg_catalog.set_config('realtime.topic', p_topic, true);
    perform pg_catalog.set_config('role', coalesce(p_claims ->> 'role', 'anon'), true);
    select exists (select 1 from realtime.messages m where m.id = v_probe and m.topic = p_topic and m.extension = p_extension)
      into v_ok;
    raise exception using errcode = 'RTPRB', message = 'authorization probe rolled back';
  exception when sqlstate 'RTPRB' then
    null;
  end;
  return v_ok;
end
$$;
revoke all on function realtime.can_receive(jsonb, text, text) from public, anon, authenticated;

create or replace function realtime.can_send(p_claims jsonb, p_topic text, p_extension text default 'broadcast')
returns boolean
language plpgsql volatile
as $$
declare
  v_ok boolean := false;
begin
  begin
    perform pg_catalog.set_config('request.jwt.claims', p_claims::text, true);
    perform pg_catalog.set_config('request.jwt.claim.sub', coalesce(p_claims ->> 'sub', ''), true);
    perform pg_catalog.set_config('request.jwt.claim.role', coalesce(p_claims ->> 'role', 'anon'), true);
    perform pg_catalog.set_config('realtime.topic', p_topic, true);
    perform pg_catalog.set_config('role', coalesce(p_claims ->> 'role', 'anon'), true);
    begin
      insert into realtime.messages (topic, extension, private, payload, event)
      values (p_topic, p_extension, true, '{}', 'authorization_probe');
      v_ok := true;
    exception when insufficient_privilege then
      v_ok := false;
    end;
    raise exception using errcode = 'RTPRB', message = 'authorization probe rolled back';
  exception when sqlstate 'RTPRB' then
    null;
  end;
  return v_ok;
end
$$;
revoke all on function realtime.can_send(jsonb, text, text) from public, anon, authenticated;
