-- Decks, AI card operations and template review.
--
-- An AI card operation (rewrite, translate, condense, expand, change tone) is presenton's
-- document operation for one card: it names the revision it read (base_revision) and the hash of
-- the card as read then (card_hash), carries the client's Idempotency-Key with the hash of its
-- request, and ends applied (with the revision it made), conflict (a human changed the card while
-- the AI worked: nothing was overwritten and the proposal waits in result), failed, discarded or
-- canceled. The AI call is an ordinary AI gateway job (source deck, the gateway's own text
-- pricing: it reserves and settles by itself); the api admits it and queues deck.card_op, whose
-- worker runs it and applies the result under the document's row lock (functions/_shared/deck/
-- operations/). Rows are written only by the api's and worker's server code (private functions
-- below) and by deck.discard_operation; members read them through RLS.
--
-- Template review: deck.review_template publishes a generated template into the gallery or
-- rejects it.

create table deck.operations (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null references public.orgs (id) on delete cascade,
  document_id uuid not null references content.documents (id) on delete cascade,
  card_id text not null check (card_id ~ '^[A-Za-z0-9_-]{1,64}$'),
  op text not null check (op in ('rewrite', 'translate', 'condense', 'expand', 'tone')),
  params jsonb not null default '{}' check (jsonb_typeof(params) = 'object' and octet_length(params::text) <= 8192),
  base_revision int not null check (base_revision > 0),
  card_hash text not null check (card_hash ~ '^[0-9a-f]{64}$'),
  base_card jsonb not null check (jsonb_typeof(base_card) = 'object' and octet_length(base_card::text) <= 65536),
  idempotency_key text check (char_length(idempotency_key) between 1 and 200),
  request_hash text not null check (request_hash ~ '^[0-9a-f]{64}$'),
  state text not null default 'queued'
    check (state in ('queued', 'running', 'applied', 'conflict', 'failed', 'discarded', 'canceled')),
  ai_job_id uuid references ai.jobs (id) on delete set null,
  result jsonb check (result is null or jsonb_typeof(result) = 'object'),
  resulting_revision int check (resulting_revision > 0),
  actor_id uuid references auth.users (id) on delete set null,
  actor_source text not null default 'ai' check (actor_source in ('ai', 'manual')),
  resolved_by uuid references auth.users (id) on delete set null,
  error jsonb check (error is null or jsonb_typeof(error) = 'object'),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  finished_at timestamptz,
  check ((state = 'applied') = (resulting_revision is not null)),
  check (state <> 'conflict' or result is not null)
);
create index operations_org_idx on deck.operations (org_id, created_at desc);
create index operations_document_idx on deck.operations (document_id, created_at desc);
create unique index operations_idempotency_idx on deck.operations (document_id, idempotency_key) where idempotency_key is not null;
create unique index operations_ai_job_idx on deck.operations (ai_job_id);
create index operations_actor_idx on deck.operations (actor_id);
create index operations_resolved_by_idx on deck.operations (resolved_by);
-- The sweep's scan: operations still waiting on their AI job.
create index operations_open_idx on deck.operations (updated_at) where state in ('queued', 'running');

comment on table deck.operations is 'AI card operations (presenton''s document operations, per card): each names the revision and the card hash it read; the result is applied onto the current deck only if that card is unchanged, else it waits as a visible conflict (nothing overwritten). Readers of the deck see its operations; the api and worker write them.';
comment on column deck.operations.card_id is 'The card (a stable card id of the deck body) the operation edits.';
comment on column deck.operations.op is 'rewrite, translate (params.language), condense, expand, or tone (params.tone).';
comment on column deck.operations.params is '{"language"?, "tone"?, "instructions"?, "tier"}: what the client asked for besides the op.';
comment on column deck.operations.base_revision is 'The document revision the client read (it was current when the operation was requested).';
comment on column deck.operations.card_hash is 'sha256 of the card (canonical JSON) as read at base_revision: the result applies only while the card still hashes to it.';
comment on column deck.operations.base_card is 'The card as read at base_revision (what the AI was given, and what a conflict is shown against).';
comment on column deck.operations.idempotency_key is 'The client''s Idempotency-Key, unique per document: the same key with the same request returns this operation.';
comment on column deck.operations.request_hash is 'sha256 of the request (card, op, base revision, params): the same key with another request is refused (422).';
comment on column deck.operations.state is 'queued → running → applied | conflict (a human changed the card: the proposal waits in result; apply or discard it) | failed (the AI call failed or answered no valid card: nothing changed); conflict → applied | discarded; queued/running → canceled.';
comment on column deck.operations.ai_job_id is 'The AI gateway job (text, source deck) that made the proposal; its credits are the gateway''s.';
comment on column deck.operations.result is 'The proposed card ({id, layout, data, image, notes}), kept after applying and while in conflict.';
comment on column deck.operations.resulting_revision is 'The document revision the change made (applied only).';
comment on column deck.operations.actor_id is 'Who asked for it; its state changes go to user:<actor_id> as deck.operation.';
comment on column deck.operations.actor_source is 'ai for an AI card operation; manual for a change applied by hand (reserved).';
comment on column deck.operations.resolved_by is 'Who applied or discarded a conflict''s proposal.';
comment on column deck.operations.error is '{code, message}: why it failed or was canceled.';
comment on column deck.operations.finished_at is 'When it reached applied, conflict, failed, discarded or canceled.';

create trigger operations_updated_at before update on deck.operations for each row execute function private.set_updated_at();

alter table deck.operations enable row level security;
revoke all on deck.operations from anon, authenticated;
grant all on deck.operations to service_role;
grant select on deck.operations to authenticated;
-- Everyone who can read the deck sees its operations (a conflict is for every editor to resolve,
-- and the proposal says no more than the deck it edits). The documents policy decides (private
-- decks, shares) through the subquery, which runs as the caller.
create policy "readers of a deck read its operations" on deck.operations
  for select to authenticated
  using (org_id in (select private.org_ids_with_permission('content.read'))
         and document_id in (select d.id from content.documents d where d.org_id = operations.org_id));

insert into notify.event_types (type, module, description, sensitive) values
  ('deck.operation_applied', 'deck', 'An AI card operation changed a deck (a version of the deck before it was kept)', false),
  ('deck.operation_conflict', 'deck', 'An AI card operation found its card changed by someone while it worked: its proposal waits to be applied or discarded', false),
  ('deck.operation_failed', 'deck', 'An AI card operation failed; the deck did not change', false)
on conflict (type) do nothing;

-- Every state change goes live to the actor (user:<id>), and ends go to the outbox.
create or replace function private.deck_operation_changed() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  if tg_op = 'UPDATE' and new.state is not distinct from old.state and new.resulting_revision is not distinct from old.resulting_revision then
    return null;
  end if;
  if new.actor_id is not null then
    perform realtime.send(
      jsonb_build_object('operation_id', new.id, 'document_id', new.document_id, 'card_id', new.card_id, 'op', new.op,
                         'state', new.state, 'resulting_revision', new.resulting_revision, 'error', new.error),
      'deck.operation', 'user:' || new.actor_id, true);
  end if;
  if tg_op = 'UPDATE' and new.state in ('applied', 'conflict', 'failed') then
    perform private.emit_event(new.org_id, 'deck.operation_' || new.state, 'deck_operation', new.id::text,
      jsonb_build_object('operation_id', new.id, 'document_id', new.document_id, 'card_id', new.card_id, 'op', new.op,
                         'actor_id', new.actor_id, 'resulting_revision', new.resulting_revision, 'error', new.error ->> 'code'));
  end if;
  return null;
end
$$;
revoke all on function private.deck_operation_changed() from public;
create trigger operations_changed after insert or update on deck.operations
  for each row execute function private.deck_operation_changed();

-- ---------------------------------------------------------------------------
-- Writes the api and worker make (private: PostgREST never reaches them)
-- ---------------------------------------------------------------------------

-- Records a requested operation for the caller, who needs edit access to the deck (PT404 when
-- they cannot see it, 42501 when they can only view or comment). The api admitted its AI job in
-- the same transaction.
create or replace function private.deck_create_operation(
  p_document_id uuid, p_card_id text, p_op text, p_params jsonb, p_base_revision int, p_card_hash text, p_base_card jsonb,
  p_idempotency_key text, p_request_hash text, p_ai_job_id uuid)
returns deck.operations
language plpgsql security definer
set search_path = ''
as $$
declare
  v_org uuid := private.content_require(p_document_id, 3);
  v_uid uuid := auth.uid();
  v deck.operations;
begin
  if v_uid is null then
    raise exception 'AI card operations are requested by signed-in members' using errcode = '42501';
  end if;
  if (select d.kind from content.documents d where d.id = p_document_id) <> 'deck' then
    raise exception 'document % is not a deck', p_document_id using errcode = '22023';
  end if;
  insert into deck.operations (org_id, document_id, card_id, op, params, base_revision, card_hash, base_card, idempotency_key,
                               request_hash, ai_job_id, actor_id)
  values (v_org, p_document_id, p_card_id, p_op, coalesce(p_params, '{}'), p_base_revision, p_card_hash, p_base_card, p_idempotency_key,
          p_request_hash, p_ai_job_id, v_uid)
  returning * into v;
  return v;
end
$$;

-- An operation the caller may resolve (apply or discard): edit access to its deck; locked.
create or replace function private.deck_operation_for_editor(p_operation_id uuid) returns deck.operations
language plpgsql security definer
set search_path = ''
as $$
declare
  v deck.operations;
begin
  select * into v from deck.operations o where o.id = p_operation_id for update;
  if not found or private.deck_document_level(v.document_id) = 0 then
    raise exception 'operation not found' using errcode = 'PT404';
  end if;
  perform private.content_require(v.document_id, 3);
  return v;
end
$$;

-- The level (0 none … 3 edit) the caller has on a document.
create or replace function private.deck_document_level(p_document_id uuid) returns int
language sql stable security definer
set search_path = ''
as $$
  select coalesce((select a.level from private.content_access(p_document_id) a), 0)
$$;

-- Marks a conflict's proposal applied by the caller (the api wrote it onto the deck in this
-- transaction, at p_revision).
create or replace function private.deck_resolve_operation(p_operation_id uuid, p_revision int)
returns deck.operations
language plpgsql security definer
set search_path = ''
as $$
declare
  v deck.operations := private.deck_operation_for_editor(p_operation_id);
begin
  if v.state <> 'conflict' then
    raise exception 'only an operation in conflict is applied by hand (this one is %)', v.state using errcode = 'PT409';
  end if;
  update deck.operations set state = 'applied', resulting_revision = p_revision, resolved_by = auth.uid(), finished_at = now()
   where id = p_operation_id
  returning * into v;
  return v;
end
$$;

revoke all on function private.deck_create_operation(uuid, text, text, jsonb, int, text, jsonb, text, text, uuid),
  private.deck_operation_for_editor(uuid), private.deck_document_level(uuid), private.deck_resolve_operation(uuid, int) from public;
grant execute on function private.deck_create_operation(uuid, text, text, jsonb, int, text, jsonb, text, text, uuid),
  private.deck_operation_for_editor(uuid), private.deck_document_level(uuid), private.deck_resolve_operation(uuid, int)
  to authenticated, service_role;

-- ---------------------------------------------------------------------------
-- RPCs for clients
-- ---------------------------------------------------------------------------

/*
 * Discards an operation: a conflict's proposal (→ discarded), or one still waiting on its AI job
 * (→ canceled: the AI job is canceled and its credits released). Editors of the deck may; an
 * operation that already ended otherwise is PT409.
 */
create or replace function deck.discard_operation(p_operation_id uuid) returns deck.operations
language plpgsql security definer
set search_path = ''
as $$
declare
  v deck.operations := private.deck_operation_for_editor(p_operation_id);
begin
  if v.state = 'conflict' then
    update deck.operations set state = 'discarded', resolved_by = auth.uid(), finished_at = now()
     where id = p_operation_id returning * into v;
  elsif v.state in ('queued', 'running') then
    if v.ai_job_id is not null and exists (select 1 from ai.jobs j where j.id = v.ai_job_id and j.status in ('queued', 'running')) then
      perform private.ai_finish_job(v.ai_job_id, 'canceled', null, jsonb_build_object('code', 'canceled', 'message', 'the card operation was discarded'));
    end if;
    update deck.operations set state = 'canceled', resolved_by = auth.uid(), finished_at = now(),
                               error = jsonb_build_object('code', 'canceled', 'message', 'discarded before it finished')
     where id = p_operation_id returning * into v;
  else
    raise exception 'this operation is % and cannot be discarded', v.state using errcode = 'PT409';
  end if;
  return v;
end
$$;
comment on function deck.discard_operation(uuid) is 'Discards an AI card operation: a conflict''s proposal, or one still running (its AI job is canceled, its credits released). Editors of the deck.';

/*
 * Decides a template waiting in review. Publishing lists the deck in the org's template gallery
 * (content.documents: is_template, its category and locale, status published, with a version of
 * what is published); rejecting keeps it out. Needs content.write in the deck's org and manage
 * access to the deck (edit through membership); PT404 when the caller cannot see the template,
 * PT409 when it is not in review. A live deck whose latest edits are not compacted yet cannot be
 * versioned here (that needs the merged Yjs state): publish it through the api
 * (POST /api/deck/templates/{id}/review), which versions the merged state first.
 */
create or replace function deck.review_template(p_document_id uuid, p_decision text, p_note text default null)
returns deck.templates
language plpgsql security definer
set search_path = ''
as $$
declare
  v deck.templates;
  v_a record;
  v_doc content.documents;
  v_live content.live_states;
  v_service boolean := coalesce(auth.role(), '') = 'service_role';
begin
  select * into v from deck.templates t where t.document_id = p_document_id for update;
  select * into v_a from private.content_access(p_document_id);
  -- The operator (service role: a review script, Studio's API) reviews any template.
  if v.document_id is null or (not v_service and (coalesce(v_a.level, 0) = 0
     or v.org_id not in (select private.org_ids_with_permission('content.read')))) then
    raise exception 'template not found' using errcode = 'PT404';
  end if;
  if not v_service and (not private.has_permission(v.org_id, 'content.write') or not v_a.can_manage) then
    raise exception 'reviewing templates needs content.write in the org and manage access to the deck' using errcode = '42501';
  end if;
  if p_decision is null or p_decision not in ('publish', 'reject') then
    raise exception 'the decision is publish or reject' using errcode = '22023';
  end if;
  if p_note is not null and char_length(p_note) > 1000 then
    raise exception 'a review note has at most 1000 characters' using errcode = '22023';
  end if;
  if v.status <> 'review' then
    raise exception 'this template was already reviewed (it is %)', v.status using errcode = 'PT409';
  end if;
  -- A generated template is published only once it is made (an empty or half-made deck never
  -- reaches the gallery); rejecting it early is fine.
  if p_decision = 'publish' and v.generation_id is not null
     and (select g.status from deck.generations g where g.id = v.generation_id) is distinct from 'completed' then
    raise exception 'this template is still being generated; publish it once its generation completes' using errcode = 'PT409';
  end if;
  if p_decision = 'publish' then
    select * into v_doc from content.documents d where d.id = p_document_id for update;
    if v_doc.status <> 'published' and v_doc.last_version_revision <> v_doc.revision then
      select * into v_live from content.live_states s where s.document_id = p_document_id;
      if v_live.document_id is not null and (v_doc.pending_updates > 0 or v_doc.body_revision <> v_doc.revision) then
        raise exception 'the deck has live edits not merged yet; publish it through the api (POST /api/deck/templates/%/review) or try again shortly', p_document_id
          using errcode = 'PT409';
      end if;
      perform private.content_add_version(p_document_id, v_doc.revision, v_doc.title, v_doc.body, v_live.ystate, 'publish', null, false, null);
    end if;
    perform content.update_document(p_document_id, null, null, null, true, v.category, v.locale);
    if v_doc.status <> 'published' then
      perform private.content_set_status(p_document_id, 'published');
    end if;
  end if;
  update deck.templates
     set status = case p_decision when 'publish' then 'published' else 'rejected' end,
         reviewed_by = auth.uid(), reviewed_at = now(), review_note = p_note
   where document_id = p_document_id
  returning * into v;
  return v;
end
$$;
comment on function deck.review_template(uuid, text, text) is 'Publishes a template waiting in review into the org''s gallery (is_template, category, locale, status published) or rejects it. content.write and manage access to the deck; only from review.';

revoke all on function deck.discard_operation(uuid), deck.review_template(uuid, text, text) from public, anon;
grant execute on function deck.discard_operation(uuid), deck.review_template(uuid, text, text) to authenticated, service_role;
