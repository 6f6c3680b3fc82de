-- The user's own channel, user:<id>, carries broadcasts that come from an org: notifications,
-- AI job progress, video progress. Realtime authorizes a private channel when it is joined, not
-- per message, so the channel cannot leave out one org's messages. An aal1 session of a member of
-- an org that requires MFA therefore may not join it at all until it steps up to aal2 (then it
-- joins again); otherwise it would hear that org's notification titles and bodies, which the
-- rows' own policies hide from it. Org channels keep their rule (members who meet the org's MFA
-- rule), and a user in no MFA org joins as before.
drop policy "users receive their own and their orgs' broadcasts" on realtime.messages;
create policy "users receive their own and their orgs' broadcasts" on realtime.messages
  for select to authenticated
  using (
    extension = 'broadcast'
    and (
      ((select realtime.topic()) = 'user:' || (select auth.uid())::text
       and cardinality((select private.mfa_blocked_org_ids_array())) = 0)
      or private.topic_org_id((select realtime.topic())) in (select private.accessible_org_ids())
    )
  );
