-- Local stand-in for Supabase Storage's schema: the tables, helpers and triggers a hosted
-- project's `storage` schema has, with the same names and signatures. Re-applied on every
-- stack start, so every statement is idempotent.
create schema if not exists storage authorization supabase_storage_admin;
grant usage on schema storage to anon, authenticated, service_role;

do $$
begin
  if not exists (select 1 from pg_type t join pg_namespace n on n.oid = t.typnamespace
                 where n.nspname = 'storage' and t.typname = 'buckettype') then
    create type storage.buckettype as enum ('STANDARD', 'ANALYTICS', 'VECTOR');
  end if;
end
$$;

create table if not exists storage.buckets (
  id text primary key,
  name text not null unique,
  owner uuid,
  owner_id text,
  public boolean default false,
  avif_autodetection boolean default false,
  file_size_limit bigint,
  allowed_mime_types text[],
  type storage.buckettype not null default 'STANDARD',
  versioning_status text default 'DISABLED',
  created_at timestamptz default now(),
  updated_at timestamptz default now()
);
-- Databases made before the enum existed carry `type` as text.
do $$
begin
  if (select data_type from information_schema.columns
      where table_schema = 'storage' and table_name = 'buckets' and column_name = 'type') = 'text' then
    alter table storage.buckets alter column type drop default;
    alter table storage.buckets alter column type type storage.buckettype using type::storage.buckettype;
    alter table storage.buckets alter column type set default 'STANDARD';
  end if;
end
$$;
alter table storage.buckets add column if not exists versioning_status text default 'DISABLED';

create table if not exists storage.objects (
  id uuid primary key default gen_random_uuid(),
  bucket_id text references storage.buckets (id),
  name text,
  owner uuid,
  owner_id text,
  metadata jsonb,
  user_metadata jsonb,
  version text,
  path_tokens text[] generated always as (string_to_array(name, '/')) stored,
  created_at timestamptz default now(),
  updated_at timestamptz default now(),
  last_accessed_at timestamptz default now()
);
create unique index if not exists bucketid_objname on storage.objects (bucket_id, name);
create index if not exists name_prefix_search on storage.objects (name text_pattern_ops);
alter table storage.buckets enable row level security;
alter table storage.objects enable row level security;
alter table storage.buckets owner to supabase_storage_admin;
alter table storage.objects owner to supabase_storage_admin;

comment on column storage.objects.owner is 'Field is deprecated, use owner_id instead';
comment on column storage.buckets.owner is 'Field is deprecated, use owner_id instead';

create or replace function storage.foldername(name text) returns text[]
language plpgsql immutable
as $$
declare
  _parts text[];
begin
  select string_to_array(name, '/') into _parts;
  return _parts[1:array_length(_parts, 1) - 1];
end
$$;

create or replace function storage.filename(name text) returns text
language plpgsql immutable
as $$
declare
  _parts text[];
begin
  select string_to_array(name, '/') into _parts;
  return _parts[array_length(_parts, 1)];
end
$$;

create or replace function storage.extension(name text) returns text
language plpgsql immutable
as $$
declare
  _parts text[];
  _filename text;
begin
  select string_to_array(name, '/') into _parts;
  select _parts[array_length(_parts, 1)] into _filename;
  return reverse(split_part(reverse(_filename), '.', 1));
end
$$;

-- The Storage operation the current request performs (`storage.object.upload`, ...), which the
-- server sets per transaction, so that policies can tell operations apart.
create or replace function storage.operation() returns text
language plpgsql stable
as $$
begin
  return current_setting('storage.operation', true);
end
$$;

create or replace function storage.allow_only_operation(expected_operation text) returns boolean
language plpgsql stable
as $$
declare
  current_operation text := nullif(current_setting('storage.operation', true), '');
begin
  if current_operation is null then
    return false;
  end if;
  return current_operation = expected_operation;
end
$$;

create or replace function storage.allow_any_operation(expected_operations text[]) returns boolean
language plpgsql stable
as $$
declare
  current_operation text := nullif(current_setting('storage.operation', true), '');
begin
  if current_operation is null then
    return false;
  end if;
  return current_operation = any (expected_operations);
end
$$;

-- Total bytes per bucket, from the sizes the server records in metadata.
create or replace function storage.get_size_by_bucket() returns table (size bigint, bucket_id text)
language plpgsql stable
as $$
begin
  return query
    select sum((obj.metadata ->> 'size')::bigint)::bigint as size, obj.bucket_id
    from storage.objects as obj
    group by obj.bucket_id;
end
$$;

-- Legacy permission probe: inserts the row (RLS decides) and always rolls it back.
create or replace function storage.can_insert_object(bucketid text, name text, owner uuid, metadata jsonb) returns void
language plpgsql
as $$
begin
  insert into storage.objects (bucket_id, name, owner, metadata) values (bucketid, name, owner, metadata);
  -- Undo the successful insert: the caller only wanted to know whether it would pass.
  raise sqlstate 'PT200' using message = 'ROLLBACK', detail = 'rollback successful insert';
end
$$;

-- Backs `list`: the folders and files one level below `prefix`, as the caller may see them
-- (SECURITY INVOKER, so the caller's SELECT policies apply). `levels` is the level listed
-- (the number of '/'-separated parts of the prefix); folders come first, with null ids.
create or replace function storage.search(
  prefix text,
  bucketname text,
  limits int default 100,
  levels int default 1,
  offsets int default 0,
  search text default '',
  sortcolumn text default 'name',
  sortorder text default 'asc'
) returns table (
  name text,
  id uuid,
  updated_at timestamptz,
  created_at timestamptz,
  last_accessed_at timestamptz,
  metadata jsonb
)
language plpgsql stable security invoker
as $$
declare
  v_order_by text;
  v_sort_order text;
begin
  v_order_by := case lower(coalesce(sortcolumn, 'name'))
    when 'updated_at' then 'updated_at'
    when 'created_at' then 'created_at'
    when 'last_accessed_at' then 'last_accessed_at'
    else 'name'
  end;
  v_sort_order := case when lower(coalesce(sortorder, 'asc')) = 'desc' then 'desc' else 'asc' end;

  return query execute format(
    $sql$
    with folders as (
      select o.path_tokens[$1] as folder
      from storage.objects o
      where o.name ilike $2 || $3 || '%%'
        and o.bucket_id = $4
        and array_length(o.path_tokens, 1) <> $1
      group by folder
      order by folder %1$s
    )
    (select folder as name, null::uuid as id, null::timestamptz as updated_at, null::timestamptz as created_at,
            null::timestamptz as last_accessed_at, null::jsonb as metadata
     from folders)
    union all
    (select o.path_tokens[$1] as name, o.id, o.updated_at, o.created_at, o.last_accessed_at, o.metadata
     from storage.objects o
     where o.name ilike $2 || $3 || '%%'
       and o.bucket_id = $4
       and array_length(o.path_tokens, 1) = $1
     order by %2$I %1$s)
    limit $5 offset $6
    $sql$, v_sort_order, v_order_by)
  using levels, coalesce(prefix, ''), coalesce(search, ''), bucketname, least(coalesce(limits, 100), 1500), coalesce(offsets, 0);
end
$$;

create or replace function storage.update_updated_at_column() returns trigger
language plpgsql
as $$
begin
  new.updated_at = now();
  return new;
end
$$;
drop trigger if exists update_objects_updated_at on storage.objects;
create trigger update_objects_updated_at
  before update on storage.objects
  for each row execute function storage.update_updated_at_column();

-- Rows of storage.objects point at bytes only the Storage server can remove, so a plain
-- DELETE is refused unless the transaction says it comes from the server (or knows what it does).
create or replace function storage.protect_delete() returns trigger
language plpgsql
as $$
begin
  if coalesce(current_setting('storage.allow_delete_query', true), 'false') != 'true' then
    raise exception 'Direct deletion from storage tables is not allowed. Use the Storage API instead.'
      using hint = 'This prevents accidental data loss from orphaned objects.',
            errcode = '42501';
  end if;
  return null;
end
$$;
drop trigger if exists protect_buckets_delete on storage.buckets;
create trigger protect_buckets_delete
  before delete on storage.buckets
  for each statement execute function storage.protect_delete();
drop trigger if exists protect_objects_delete on storage.objects;
create trigger protect_objects_delete
  before delete on storage.objects
  for each statement execute function storage.protect_delete();

grant all on storage.buckets, storage.objects to anon, authenticated, service_role;
grant execute on function
  storage.foldername(text), storage.filename(text), storage.extension(text), storage.operation(),
  storage.allow_only_operation(text), storage.allow_any_operation(text[]), storage.get_size_by_bucket(),
  storage.can_insert_object(text, text, uuid, jsonb),
  storage.search(text, text, int, int, int, text, text, text)
  to anon, authenticated, service_role;
