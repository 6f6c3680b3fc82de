-- Billing demo data: a Stripe catalog (Pro and Team in USD, EUR and INR, a credit pack), acme on
-- Pro with billing history, globex on the free plan, and credits for both.

insert into billing.products (id, name, description, plan_key, credits, metadata) values
  ('prod_demo_pro', 'Pro', 'For professionals and small teams', 'pro', null, '{"plinth_plan": "pro"}'),
  ('prod_demo_team', 'Team', 'For growing teams', 'team', null, '{"plinth_plan": "team"}'),
  ('prod_demo_pack', '1,000 credits', 'One-off credit pack', null, 1000, '{"plinth_credits": "1000"}')
on conflict do nothing;

insert into billing.prices (id, product_id, currency, unit_amount, type, recurring_interval, interval_count, lookup_key) values
  ('price_demo_pro_usd', 'prod_demo_pro', 'usd', 2000, 'recurring', 'month', 1, 'pro_monthly_usd'),
  ('price_demo_pro_eur', 'prod_demo_pro', 'eur', 1900, 'recurring', 'month', 1, 'pro_monthly_eur'),
  ('price_demo_pro_inr', 'prod_demo_pro', 'inr', 149900, 'recurring', 'month', 1, 'pro_monthly_inr'),
  ('price_demo_team_usd', 'prod_demo_team', 'usd', 6000, 'recurring', 'month', 1, 'team_monthly_usd'),
  ('price_demo_team_eur', 'prod_demo_team', 'eur', 5500, 'recurring', 'month', 1, 'team_monthly_eur'),
  ('price_demo_team_inr', 'prod_demo_team', 'inr', 449900, 'recurring', 'month', 1, 'team_monthly_inr'),
  ('price_demo_pack_usd', 'prod_demo_pack', 'usd', 1000, 'one_time', null, null, 'pack_1000_usd'),
  ('price_demo_pack_inr', 'prod_demo_pack', 'inr', 79900, 'one_time', null, null, 'pack_1000_inr')
on conflict do nothing;

insert into billing.customers (org_id, stripe_customer_id, email) values
  ('a0000000-0000-4000-8000-00000000a000', 'cus_demo_acme', 'alice@acme.test'),
  ('b0000000-0000-4000-8000-00000000b000', 'cus_demo_globex', 'gina@globex.test')
on conflict do nothing;

insert into billing.subscriptions (id, org_id, stripe_customer_id, status, price_id, plan_key, quantity, items,
                                   current_period_start, current_period_end, stripe_created) values
  ('sub_demo_acme', 'a0000000-0000-4000-8000-00000000a000', 'cus_demo_acme', 'active', 'price_demo_pro_usd', 'pro', 5,
   '[{"price": "price_demo_pro_usd", "quantity": 5}]', date_trunc('month', now()), date_trunc('month', now()) + interval '1 month',
   now() - interval '40 days'),
  ('sub_demo_globex', 'b0000000-0000-4000-8000-00000000b000', 'cus_demo_globex', 'canceled', 'price_demo_team_eur', 'team', 5,
   '[{"price": "price_demo_team_eur", "quantity": 5}]', date_trunc('month', now()) - interval '2 months',
   date_trunc('month', now()) - interval '1 month', now() - interval '90 days')
on conflict do nothing;

insert into billing.invoices (id, org_id, subscription_id, status, billing_reason, currency, amount_due, amount_paid,
                              period_start, period_end, stripe_created) values
  ('in_demo_acme_1', 'a0000000-0000-4000-8000-00000000a000', 'sub_demo_acme', 'paid', 'subscription_cycle', 'usd', 10000, 10000,
   date_trunc('month', now()), date_trunc('month', now()) + interval '1 month', date_trunc('month', now())),
  ('in_demo_globex_1', 'b0000000-0000-4000-8000-00000000b000', 'sub_demo_globex', 'paid', 'subscription_create', 'eur', 27500, 27500,
   date_trunc('month', now()) - interval '2 months', date_trunc('month', now()) - interval '1 month', date_trunc('month', now()) - interval '2 months')
on conflict do nothing;

insert into billing.charges (id, org_id, invoice_id, currency, amount, status, stripe_created) values
  ('ch_demo_acme_1', 'a0000000-0000-4000-8000-00000000a000', 'in_demo_acme_1', 'usd', 10000, 'succeeded', date_trunc('month', now())),
  ('ch_demo_globex_1', 'b0000000-0000-4000-8000-00000000b000', 'in_demo_globex_1', 'eur', 27500, 'succeeded', date_trunc('month', now()) - interval '2 months')
on conflict do nothing;

-- Disputes that took no credits: acme's was won before anything was taken back; globex's was lost
-- on an invoice that granted nothing to take.
insert into billing.disputes (id, org_id, charge_id, amount, currency, status, reason, credits_clawed_back, clawed_at,
                              restored_at, stripe_created) values
  ('dp_demo_acme_1', 'a0000000-0000-4000-8000-00000000a000', 'ch_demo_acme_1', 2000, 'usd', 'won', 'product_not_received', 0,
   now(), now(), date_trunc('month', now())),
  ('dp_demo_globex_1', 'b0000000-0000-4000-8000-00000000b000', 'ch_demo_globex_1', 27500, 'eur', 'lost', 'fraudulent', 0,
   null, null, date_trunc('month', now()) - interval '1 month')
on conflict do nothing;

-- Credits through the ledger's own operations, so the journal is consistent.
do $$
declare
  v_res billing.credit_reservations;
begin
  if not exists (select 1 from billing.credit_accounts where org_id = 'a0000000-0000-4000-8000-00000000a000') then
    perform billing.grant_credits('a0000000-0000-4000-8000-00000000a000', 'subscription', 5000, 'seed-acme-monthly', null, null, 'in_demo_acme_1');
    v_res := billing.reserve_credits('a0000000-0000-4000-8000-00000000a000', 40, 'seed-acme-gen-1');
    perform billing.settle_credits(v_res.id, 25);
    perform billing.reserve_credits('a0000000-0000-4000-8000-00000000a000', 10, 'seed-acme-gen-2', interval '1 day');
    perform billing.grant_credits('b0000000-0000-4000-8000-00000000b000', 'promotional', 100, 'seed-globex-welcome', null, now() + interval '30 days', 'welcome');
    v_res := billing.reserve_credits('b0000000-0000-4000-8000-00000000b000', 5, 'seed-globex-gen-1');
    perform billing.settle_credits(v_res.id, 5);
    perform billing.reserve_credits('b0000000-0000-4000-8000-00000000b000', 3, 'seed-globex-gen-2', interval '1 day');
  end if;
end
$$;
