-- Content list within its margin: the documents SELECT policy on once-per-statement arrays, and
-- the membership helpers kept on one cached plan.
--
-- Where the RLS overhead of "one org's 50 newest documents" went, measured on 10,000 orgs and
-- 1,000,000 documents for an owner of 26 orgs (explain analyze, buffers, warm session; the
-- service_role query reads 54 buffers in ~0.10 ms):
--   * the membership half, (org_id, others_private) in (select ... from
--     private.content_reader_keys()), ran the set-returning helper into a tuplestore and built a
--     hashed subplan from it on every request: 0.09 ms and 83 of the request's 137 buffers. The
--     helper joined every membership to orgs for the MFA flag (one orgs primary-key probe per
--     membership), and to builtin_roles and org_roles;
--   * the issue #8 helpers that would replace it (org_ids_with_permission_array, and
--     accessible_org_ids / member_org_ids, which most other policies call) were planned again
--     on every call: their query takes the caller's id as a parameter, and where memberships are
--     skewed (one account in thousands of orgs, as the bench's other user is, or an agency or
--     support account in production) the generic plan's estimate for "user_id = $1" is the
--     average membership count, so the plan cache judged the generic plan dearer and made a
--     custom plan per call: org_ids_with_permission_array 85 -> 17 us a call, accessible_org_ids
--     81 -> 14 us, with force_generic_plan. Their generic plans are the index scans one would
--     write (org_members by user_id, the MFA anti-join on orgs_require_mfa_idx, api_keys by id).
--
-- The policy now reads the caller's orgs as arrays, each an initplan evaluated at most once per
-- statement and only when a row needs it:
--   * membership: the org has content.read (org_ids_with_permission_array, issue #8), and for a
--     private document the caller does not own, org.manage as well;
--   * publication: plain column tests, before the share lookup, so a published row never asks it;
--   * shares: the same hashed subplan over content_shared_document_ids as before, built only when
--     a row gets that far (never, for a list of an org the caller reads).
-- The policy is wrapped as nullif(<policy>, false) is not null, which is true exactly when the
-- policy is, because of how the planner estimates it. Arm by arm, "org_id = any (<parameter
-- array>)" is costed as ten equality matches, 10 / n_distinct(org_id) (0.001 at 10,000 orgs): a
-- single-org list looked like it would return almost nothing, LIMIT 50 could not stop early,
-- and the planner swapped the (org_id, updated_at) index scan for a bitmap scan of all the org's
-- rows and a sort (+0.03 ms). The null test is estimated as a whole (nearly always true), which
-- keeps the ordered index scan that stops after 50 rows, and spares the per-arm statistics
-- lookups on every request (0.025 ms of planning).
-- The owner test calls private.current_user_id() row by row rather than as an initplan: it is
-- reached only for private documents (after visibility), costs a cached plpgsql call there, and
-- an initplan costs planning on every request, private rows or not.
-- The answers are exactly the old policy's. content_reader_keys gave (org, false) for each org
-- where the caller holds content.read and (org, true) where they hold org.manage as well, with
-- the rules org_ids_with_permission_array applies too (an API key's own org and scopes; a
-- built-in role's permissions over a custom role of the same key; the org's MFA rule unless the
-- session is aal2); a row matched on (org_id, visibility = 'private' and owner_id is distinct
-- from auth.uid()). So a row passes the membership half when its org has content.read and either
-- it is not someone else's private document (visibility is not null; "is not distinct from"
-- keeps the old answer when owner and caller are both null) or its org also has org.manage. The
-- share half (content_user_grants: live user grants, grants from live redeemed links on link or
-- public documents, role grants under the MFA rule) and the publication half are unchanged.

alter function private.org_ids_with_permission_array(text) set plan_cache_mode = force_generic_plan;
alter function private.accessible_org_ids() set plan_cache_mode = force_generic_plan;
alter function private.member_org_ids() set plan_cache_mode = force_generic_plan;

-- auth.uid() for policies planned on every request: auth.uid() is a SQL function, inlined (its
-- body parsed again) each time a statement is planned, even inside (select auth.uid()); this
-- plpgsql wrapper keeps its expression cached. Same value, always. Measured in the documents
-- policy: 0.015 ms of planning per request less than (select auth.uid()).
create or replace function private.current_user_id() returns uuid
language plpgsql stable
set search_path = ''
as $$
begin
  return auth.uid();
end
$$;
comment on function private.current_user_id() is
  'auth.uid(), for policies on hot lists: plans cheaper than auth.uid() (no SQL inlining per statement).';
revoke all on function private.current_user_id() from public;
grant execute on function private.current_user_id() to anon, authenticated, service_role;

drop policy "readers read documents by membership, share or publication" on content.documents;
create policy "readers read documents by membership, share or publication" on content.documents
  for select to authenticated
  using (
    nullif(
      (org_id = any ((select private.org_ids_with_permission_array('content.read'))::uuid[])
       and (visibility <> 'private'
            or owner_id is not distinct from private.current_user_id()
            or org_id = any ((select private.org_ids_with_permission_array('org.manage'))::uuid[])))
      or (status = 'published' and (visibility = 'public' or (is_template and template_scope = 'global')))
      or id in (select private.content_shared_document_ids()),
      false) is not null
  );
