-- Local stand-in for Realtime's authorization check on private channels. Realtime decides
-- whether a client may receive on a topic by, in one transaction: inserting a probe message
-- for the topic, switching to the client's role with its JWT claims and `realtime.topic` set,
-- and checking that RLS on realtime.messages lets it read the probe; then rolling back.
-- realtime.can_receive() does the same, so tests get the answer production would.
-- (No SET clause on purpose: a function with one may not switch roles.)
create or replace function realtime.can_receive(p_claims jsonb, p_topic text, p_extension text default 'broadcast')
returns boolean
language plpgsql volatile
as $$
declare
  v_probe uuid := gen_random_uuid();
  v_caller text := current_user;
  v_ok boolean;
begin
  insert into realtime.messages (id, topic, extension, private, payload, event)
  values (v_probe, p_topic, p_extension, true, '{}', 'authorization_probe');
  perform pg_catalog.set_config('request.jwt.claims', p_claims::text, true);
  perform pg_catalog.set_config('realtime.topic', p_topic, true);
  perform pg_catalog.set_config('role', coalesce(p_claims ->> 'role', 'anon'), true);
  select exists (select 1 from realtime.messages m where m.id = v_probe and m.topic = p_topic and m.extension = p_extension)
    into v_ok;
  perform pg_catalog.set_config('role', v_caller, true);
  perform pg_catalog.set_config('realtime.topic', '', true);
  delete from realtime.messages where id = v_probe;
  return v_ok;
end
$$;
revoke all on function realtime.can_receive(jsonb, text, text) from public, anon, authenticated;
