-- Content engine, part 3: comment threads anchored in the content, mentions that notify through
-- the events backbone (grouped per thread), and the content module's event types.
--
-- An anchor is { element_id, rel_start, rel_end, quoted_text }: the card or layer it is on, two
-- Yjs relative positions (base64) that follow the text through every edit, and the quote, so a
-- person can re-anchor. Compaction resolves anchors against the merged state; when the text is
-- gone the thread shows as "on deleted content" (anchor_status = 'deleted'). Threads are never
-- dropped for it.

create or replace function private.content_valid_anchor(p_anchor jsonb) returns boolean
language sql immutable
set search_path = ''
as $$
  select jsonb_typeof(p_anchor) = 'object'
     and not exists (select 1 from jsonb_object_keys(p_anchor) k where k not in ('element_id', 'rel_start', 'rel_end', 'quoted_text'))
     and (p_anchor ? 'element_id' or p_anchor ? 'rel_start')
     and (p_anchor ? 'rel_start') = (p_anchor ? 'rel_end')
     and (not p_anchor ? 'element_id' or (jsonb_typeof(p_anchor -> 'element_id') = 'string'
                                          and char_length(p_anchor ->> 'element_id') between 1 and 100))
     and (not p_anchor ? 'rel_start' or (jsonb_typeof(p_anchor -> 'rel_start') = 'string' and jsonb_typeof(p_anchor -> 'rel_end') = 'string'
                                         and p_anchor ->> 'rel_start' ~ '^[A-Za-z0-9+/]+={0,2}$' and p_anchor ->> 'rel_end' ~ '^[A-Za-z0-9+/]+={0,2}$'
                                         and char_length(p_anchor ->> 'rel_start') between 4 and 1024
                                         and char_length(p_anchor ->> 'rel_end') between 4 and 1024))
     and (not p_anchor ? 'quoted_text' or (jsonb_typeof(p_anchor -> 'quoted_text') = 'string'
                                           and char_length(p_anchor ->> 'quoted_text') <= 1000))
$$;

-- Comment bodies are structured: text nodes and mention nodes carrying user ids.
create or replace function private.content_valid_comment_body(p_body jsonb) returns boolean
language sql immutable
set search_path = ''
as $$
  select jsonb_typeof(p_body) = 'array' and jsonb_array_length(p_body) between 1 and 200
     and not exists (
       select 1 from jsonb_array_elements(p_body) n
       where jsonb_typeof(n) <> 'object'
          or not (
            (n ->> 'type' = 'text' and jsonb_typeof(n -> 'text') = 'string' and char_length(n ->> 'text') <= 10000
             and (select count(*) from jsonb_object_keys(n)) = 2)
            or (n ->> 'type' = 'mention' and coalesce(n ->> 'user_id', '') ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
                and (select count(*) from jsonb_object_keys(n)) = 2)))
     and (select coalesce(sum(char_length(n ->> 'text')), 0) from jsonb_array_elements(p_body) n) <= 10000
$$;
revoke all on function private.content_valid_anchor(jsonb), private.content_valid_comment_body(jsonb) from public;

create table content.comment_threads (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null references public.orgs (id) on delete cascade,
  document_id uuid not null references content.documents (id) on delete cascade,
  anchor jsonb check (anchor is null or private.content_valid_anchor(anchor)),
  anchor_status text check (anchor_status in ('anchored', 'deleted')),
  anchor_text text,
  anchor_checked_at timestamptz,
  resolved_at timestamptz,
  resolved_by uuid references auth.users (id) on delete set null,
  created_by uuid references auth.users (id) on delete set null,
  last_comment_at timestamptz not null default now(),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint anchored_threads_have_status check ((anchor is null) = (anchor_status is null))
);
create index comment_threads_org_id_idx on content.comment_threads (org_id, document_id);
create index comment_threads_document_idx on content.comment_threads (document_id, last_comment_at desc);
create index comment_threads_resolved_by_idx on content.comment_threads (resolved_by);
create index comment_threads_created_by_idx on content.comment_threads (created_by);
comment on table content.comment_threads is 'Comment threads on a document, optionally anchored to an element and a text range (Yjs relative positions). Resolved and reopened through RPCs; never dropped when their text is deleted.';
comment on column content.comment_threads.anchor is '{ element_id?, rel_start?, rel_end?, quoted_text? }: element_id is a card or layer id; rel_start/rel_end are Y.encodeRelativePosition in base64; quoted_text is what was selected.';
comment on column content.comment_threads.anchor_status is 'anchored, or deleted ("on deleted content"): its element or every character of its range is gone. Set by compaction (and by saves, for elements).';
comment on column content.comment_threads.anchor_text is 'The text currently inside the anchor''s range, as of anchor_checked_at.';

create table content.comments (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null references public.orgs (id) on delete cascade,
  thread_id uuid not null references content.comment_threads (id) on delete cascade,
  document_id uuid not null references content.documents (id) on delete cascade,
  author_id uuid references auth.users (id) on delete set null,
  body jsonb not null check (private.content_valid_comment_body(body) or (deleted_at is not null and body = '[]'::jsonb)),
  body_text text not null,
  mentions uuid[] not null default '{}',
  edited_at timestamptz,
  deleted_at timestamptz,
  created_at timestamptz not null default now()
);
create index comments_org_id_idx on content.comments (org_id, document_id);
create index comments_thread_idx on content.comments (thread_id, created_at);
create index comments_document_idx on content.comments (document_id);
create index comments_author_idx on content.comments (author_id);
comment on table content.comments is 'Comments in a thread. The body is a list of nodes: { type: text, text } and { type: mention, user_id }. Mentioned users must be able to read the document; they are notified once per thread until they read it.';
comment on column content.comments.body_text is 'The body as plain text (mentions as @name), for notifications and search.';
comment on column content.comments.mentions is 'User ids mentioned in the body.';
comment on column content.comments.deleted_at is 'Deleted by its author or a manager: the body is emptied, the place in the thread stays.';

create trigger comment_threads_updated_at before update on content.comment_threads
  for each row execute function private.set_updated_at();

alter table content.comment_threads enable row level security;
alter table content.comments enable row level security;
revoke all on content.comment_threads, content.comments from anon, authenticated;
grant all on content.comment_threads, content.comments to service_role;
grant select on content.comment_threads, content.comments to authenticated;
create policy "readers of a document read its threads" on content.comment_threads
  for select to authenticated
  using (exists (select 1 from content.documents d where d.id = comment_threads.document_id));
create policy "readers of a document read its comments" on content.comments
  for select to authenticated
  using (exists (select 1 from content.documents d where d.id = comments.document_id));

-- Live clients hear of comment activity on the document's channel.
create or replace function private.content_broadcast_comment() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  perform realtime.send(
    jsonb_build_object('thread_id', new.thread_id, 'comment_id', new.id,
                       'action', case when tg_op = 'INSERT' then 'added' when new.deleted_at is not null then 'deleted' else 'edited' end),
    'comment', 'doc:' || new.document_id::text, true);
  return null;
end
$$;
revoke all on function private.content_broadcast_comment() from public;
create trigger comments_broadcast after insert or update on content.comments
  for each row execute function private.content_broadcast_comment();

-- ---------------------------------------------------------------------------
-- Events and notifications
-- ---------------------------------------------------------------------------

insert into notify.event_types (type, module, description, sensitive) values
  ('content.document_created', 'content', 'A document was created (also by a fork or from a template)', false),
  ('content.document_published', 'content', 'A document was published', false),
  ('content.document_deleted', 'content', 'A document was deleted', false),
  ('content.comment_mentioned', 'content', 'Someone was mentioned in a comment (one per thread until read)', true),
  ('content.asset_verified', 'content', 'An uploaded asset''s bytes were checked and accepted', false),
  ('content.asset_rejected', 'content', 'An uploaded asset was rejected: its bytes are not what it claimed, or not a type we accept', true);

insert into notify.notification_rules (type, recipients, title_template, body_template, link_template, default_channels) values
  ('content.comment_mentioned', 'subject_user', '{{actor_name}} mentioned you',
   '{{actor_name}} mentioned you in a comment on "{{document_title}}": {{excerpt}}',
   '/documents/{{document_id}}?thread={{thread_id}}', '{in_app,email_digest}'),
  ('content.asset_rejected', 'subject_user', 'An upload was rejected',
   '"{{filename}}" was not added to "{{document_title}}": {{reason}}', '/documents/{{document_id}}', '{in_app}');

-- Plain text of a body, mentions as @display name.
create or replace function private.content_comment_text(p_body jsonb) returns text
language sql stable security definer
set search_path = ''
as $$
  select coalesce(string_agg(case when n ->> 'type' = 'text' then n ->> 'text'
                                  else '@' || coalesce((select p.display_name from public.profiles p where p.id = (n ->> 'user_id')::uuid), 'someone') end,
                             '' order by o), '')
  from jsonb_array_elements(p_body) with ordinality x (n, o)
$$;

-- Mentioned users, each checked against their own read access to the document.
create or replace function private.content_checked_mentions(p_document_id uuid, p_body jsonb) returns uuid[]
language plpgsql stable security definer
set search_path = ''
as $$
declare
  v_ids uuid[] := array(select distinct (n ->> 'user_id')::uuid from jsonb_array_elements(p_body) n where n ->> 'type' = 'mention');
  v_blind uuid[];
begin
  if cardinality(v_ids) > 20 then
    raise exception 'a comment mentions at most 20 people' using errcode = '22023';
  end if;
  v_blind := array(select u from unnest(v_ids) u
                   where coalesce((select l.level from private.content_level_for(p_document_id, u, null, true) l), 0) = 0);
  if cardinality(v_blind) > 0 then
    raise exception 'mentioned people cannot read this document: %', array_to_string(v_blind, ', ')
      using errcode = '22023', hint = 'Share the document with them first.';
  end if;
  return v_ids;
end
$$;

-- One mention notification per person per thread until they read it: no event while one is
-- unread or still waiting in the outbox.
create or replace function private.content_notify_mentions(p_comment content.comments, p_new uuid[]) returns void
language plpgsql security definer
set search_path = ''
as $$
declare
  v_user uuid;
  v_title text;
begin
  select d.title into v_title from content.documents d where d.id = p_comment.document_id;
  foreach v_user in array coalesce(p_new, '{}') loop
    continue when v_user = p_comment.author_id;
    continue when exists (select 1 from notify.notifications n
                          where n.user_id = v_user and n.type = 'content.comment_mentioned' and n.read_at is null
                            and n.archived_at is null and n.data ->> 'thread_id' = p_comment.thread_id::text);
    continue when exists (select 1 from notify.events e
                          where e.org_id = p_comment.org_id and e.type = 'content.comment_mentioned' and e.dispatched_at is null
                            and e.subject_id = p_comment.thread_id::text and e.payload ->> 'user_id' = v_user::text);
    perform private.emit_event(p_comment.org_id, 'content.comment_mentioned', 'comment_thread', p_comment.thread_id::text,
      jsonb_build_object('document_id', p_comment.document_id, 'thread_id', p_comment.thread_id, 'comment_id', p_comment.id,
                         'user_id', v_user, 'document_title', coalesce(nullif(v_title, ''), 'Untitled'),
                         'excerpt', left(p_comment.body_text, 200)));
  end loop;
end
$$;
revoke all on function private.content_comment_text(jsonb), private.content_checked_mentions(uuid, jsonb),
  private.content_notify_mentions(content.comments, uuid[]) from public;

-- ---------------------------------------------------------------------------
-- RPCs
-- ---------------------------------------------------------------------------

create or replace function content.add_comment(p_document_id uuid, p_body jsonb, p_anchor jsonb default null, p_thread_id uuid default null)
returns content.comments
language plpgsql security definer
set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_org uuid := private.content_require(p_document_id, 2);
  v_thread content.comment_threads;
  v_mentions uuid[];
  v_comment content.comments;
begin
  if p_body is null or not private.content_valid_comment_body(p_body) then
    raise exception 'a comment body is 1 to 200 nodes: {"type":"text","text":…} or {"type":"mention","user_id":…}, at most 10,000 characters'
      using errcode = '22023';
  end if;
  if p_anchor is not null and not private.content_valid_anchor(p_anchor) then
    raise exception 'an anchor is {element_id?, rel_start?, rel_end?, quoted_text?} with base64 relative positions' using errcode = '22023';
  end if;
  v_mentions := private.content_checked_mentions(p_document_id, p_body);
  if p_thread_id is null then
    insert into content.comment_threads (org_id, document_id, anchor, anchor_status, created_by)
    values (v_org, p_document_id, p_anchor, case when p_anchor is not null then 'anchored' end, v_uid)
    returning * into v_thread;
  else
    if p_anchor is not null then
      raise exception 'a reply takes its thread''s anchor' using errcode = '22023';
    end if;
    -- A reply reopens a resolved thread.
    update content.comment_threads t set last_comment_at = now(), resolved_at = null, resolved_by = null
     where t.id = p_thread_id and t.document_id = p_document_id
    returning * into v_thread;
    if not found then
      raise exception 'thread not found' using errcode = 'PT404';
    end if;
  end if;
  insert into content.comments (org_id, thread_id, document_id, author_id, body, body_text, mentions)
  values (v_org, v_thread.id, p_document_id, v_uid, p_body, private.content_comment_text(p_body), v_mentions)
  returning * into v_comment;
  perform private.content_notify_mentions(v_comment, v_mentions);
  return v_comment;
end
$$;
comment on function content.add_comment(uuid, jsonb, jsonb, uuid) is 'Starts a thread (with an optional anchor) or replies to one (which reopens it). Needs comment access; mentioned people must be able to read the document and are notified once per thread until they read it.';

create or replace function content.edit_comment(p_comment_id uuid, p_body jsonb)
returns content.comments
language plpgsql security definer
set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_comment content.comments;
  v_mentions uuid[];
  v_before uuid[];
begin
  select * into v_comment from content.comments c where c.id = p_comment_id for update;
  v_before := v_comment.mentions;
  if not found or coalesce(private.content_level(v_comment.document_id), 0) = 0 then
    raise exception 'comment not found' using errcode = 'PT404';
  end if;
  if v_comment.author_id is distinct from v_uid or v_comment.deleted_at is not null then
    raise exception 'only its author edits a comment, and not once deleted' using errcode = '42501';
  end if;
  perform private.content_require(v_comment.document_id, 2);
  if p_body is null or not private.content_valid_comment_body(p_body) then
    raise exception 'a comment body is 1 to 200 text or mention nodes, at most 10,000 characters' using errcode = '22023';
  end if;
  v_mentions := private.content_checked_mentions(v_comment.document_id, p_body);
  update content.comments c
     set body = p_body, body_text = private.content_comment_text(p_body), mentions = v_mentions, edited_at = now()
   where c.id = p_comment_id
  returning * into v_comment;
  -- Only people newly mentioned hear of it.
  perform private.content_notify_mentions(v_comment, array(select unnest(v_mentions) except select unnest(v_before)));
  return v_comment;
end
$$;
comment on function content.edit_comment(uuid, jsonb) is 'Replaces the caller''s own comment body; newly mentioned people are notified.';

create or replace function content.delete_comment(p_comment_id uuid)
returns content.comments
language plpgsql security definer
set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_comment content.comments;
  v_a record;
begin
  select * into v_comment from content.comments c where c.id = p_comment_id for update;
  select * into v_a from private.content_access(v_comment.document_id);
  if v_comment.id is null or v_a.level = 0 then
    raise exception 'comment not found' using errcode = 'PT404';
  end if;
  if v_comment.author_id is distinct from v_uid and not v_a.can_manage then
    raise exception 'only its author or a manager of the document deletes a comment' using errcode = '42501';
  end if;
  update content.comments c set body = '[]'::jsonb, body_text = '', mentions = '{}', deleted_at = coalesce(c.deleted_at, now())
   where c.id = p_comment_id
  returning * into v_comment;
  return v_comment;
end
$$;
comment on function content.delete_comment(uuid) is 'Empties a comment (its author, or a manager of the document); its place in the thread stays.';

create or replace function content.resolve_thread(p_thread_id uuid, p_resolved boolean default true)
returns content.comment_threads
language plpgsql security definer
set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_thread content.comment_threads;
begin
  select * into v_thread from content.comment_threads t where t.id = p_thread_id for update;
  if not found or coalesce(private.content_level(v_thread.document_id), 0) = 0 then
    raise exception 'thread not found' using errcode = 'PT404';
  end if;
  perform private.content_require(v_thread.document_id, 2);
  if p_resolved is null then
    raise exception 'p_resolved must be true or false' using errcode = '22023';
  end if;
  update content.comment_threads t
     set resolved_at = case when p_resolved then coalesce(t.resolved_at, now()) end,
         resolved_by = case when p_resolved then coalesce(t.resolved_by, v_uid) end
   where t.id = p_thread_id
  returning * into v_thread;
  return v_thread;
end
$$;
comment on function content.resolve_thread(uuid, boolean) is 'Resolves (or, with false, reopens) a thread. Needs comment access.';

revoke all on function content.add_comment(uuid, jsonb, jsonb, uuid), content.edit_comment(uuid, jsonb), content.delete_comment(uuid),
  content.resolve_thread(uuid, boolean) from public, anon;
grant execute on function content.add_comment(uuid, jsonb, jsonb, uuid), content.edit_comment(uuid, jsonb), content.delete_comment(uuid),
  content.resolve_thread(uuid, boolean) to authenticated;
