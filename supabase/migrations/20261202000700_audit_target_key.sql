-- The audit log's target_id is the changed row's key. Tables keyed by their org alone (one row
-- per org: billing.customers) have neither an id nor a user_id column, so their rows were audited
-- with target_id null; their key, org_id, is now recorded. Only that expression changes.
create or replace function private.audit_row() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  v_new jsonb := case when tg_op <> 'DELETE' then to_jsonb(new) end;
  v_old jsonb := case when tg_op <> 'INSERT' then to_jsonb(old) end;
  v_row jsonb := coalesce(v_new, v_old);
  v_org uuid := coalesce(v_row ->> 'org_id', case when tg_table_name = 'orgs' then v_row ->> 'id' end)::uuid;
  v_masked text[] := coalesce(tg_argv::text[], '{}');
  v_before jsonb;
  v_after jsonb;
  v_req jsonb := private.request_meta();
  v_uid uuid := auth.uid();
  k text;
begin
  -- A cascade from deleting the org (or the user's personal org): nothing left to audit.
  if not exists (select 1 from public.orgs o where o.id = v_org) then
    return null;
  end if;
  foreach k in array v_masked loop
    if v_new ? k then v_new := jsonb_set(v_new, array[k], '"***"'); end if;
    if v_old ? k then v_old := jsonb_set(v_old, array[k], '"***"'); end if;
  end loop;
  if tg_op = 'UPDATE' then
    select jsonb_object_agg(n.key, o.value), jsonb_object_agg(n.key, n.value) into v_before, v_after
    from jsonb_each(v_new) n join jsonb_each(v_old) o using (key)
    where n.value is distinct from o.value and n.key not in ('updated_at', 'last_used_at');
    if v_after is null then
      return null; -- only bookkeeping columns changed
    end if;
  else
    v_before := v_old;
    v_after := v_new;
  end if;
  insert into notify.audit_log (org_id, actor_user_id, actor_api_key_id, actor_role, action, target_table, target_id,
                                before, after, request_id, ip, user_agent)
  values (v_org, (select u.id from auth.users u where u.id = v_uid), private.api_key_id(),
          coalesce(auth.role(), current_user), lower(tg_op), tg_table_schema || '.' || tg_table_name,
          coalesce(v_row ->> 'id', v_row ->> 'user_id', v_row ->> 'org_id'), v_before, v_after,
          v_req ->> 'id', v_req ->> 'ip', v_req ->> 'user_agent');
  return null;
end
$$;
