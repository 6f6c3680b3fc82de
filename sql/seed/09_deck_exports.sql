-- Deck exports demo data: one row in each org. Acme's launch deck had a PPTX whose week is over
-- (the retention job removed the file, so asking again renders it anew); Globex's review has a
-- PDF that failed on a worker without Chromium. No seeded row points at a file.

insert into deck.exports (id, org_id, document_id, revision, format, status, title, renders, pages, bytes, sha256,
                          expires_at, error_code, error, requested_by, finished_at, created_at) values
  ('a0000000-0000-4000-8000-0000000de0e1', 'a0000000-0000-4000-8000-00000000a000', 'a0000000-0000-4000-8000-0000000de001', 1, 'pptx',
   'expired', 'Plinth launch plan', 1, 4, 48213, encode(sha256(convert_to('seed: acme launch plan pptx', 'UTF8')), 'hex'),
   now() - interval '1 day', null, null, 'a0000000-0000-4000-8000-000000000001', now() - interval '1 day', now() - interval '8 days'),
  ('b0000000-0000-4000-8000-0000000de0e1', 'b0000000-0000-4000-8000-00000000b000', 'b0000000-0000-4000-8000-0000000de001', 1, 'pdf',
   'failed', 'Globex quarterly review', 1, null, null, null,
   null, 'chromium_missing', 'PDF export needs Chromium, and there is none at /usr/bin/chromium. Install it (Debian: apt-get install -y chromium) or set PLINTH_CHROMIUM_PATH to its binary.',
   'b0000000-0000-4000-8000-000000000001', now() - interval '2 hours', now() - interval '2 hours')
on conflict (id) do nothing;
