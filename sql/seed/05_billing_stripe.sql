-- Billing demo data, part 3: a credit pack bought through Checkout by each demo org.

do $$
declare
  v_grant uuid;
begin
  if not exists (select 1 from billing.credit_purchases where checkout_session_id = 'cs_demo_acme_pack') then
    v_grant := billing.grant_credits('a0000000-0000-4000-8000-00000000a000', 'pack', 1000, 'seed-acme-pack', null, null, 'cs_demo_acme_pack');
    insert into billing.credit_purchases (checkout_session_id, org_id, payment_intent_id, price_id, product_id, quantity,
                                          credits, amount_total, currency, grant_id)
    values ('cs_demo_acme_pack', 'a0000000-0000-4000-8000-00000000a000', 'pi_demo_acme_pack', 'price_demo_pack_usd',
            'prod_demo_pack', 1, 1000, 1000, 'usd', v_grant);
  end if;
  if not exists (select 1 from billing.credit_purchases where checkout_session_id = 'cs_demo_globex_pack') then
    v_grant := billing.grant_credits('b0000000-0000-4000-8000-00000000b000', 'pack', 2000, 'seed-globex-pack', null, null, 'cs_demo_globex_pack');
    insert into billing.credit_purchases (checkout_session_id, org_id, payment_intent_id, price_id, product_id, quantity,
                                          credits, amount_total, currency, grant_id)
    values ('cs_demo_globex_pack', 'b0000000-0000-4000-8000-00000000b000', 'pi_demo_globex_pack', 'price_demo_pack_inr',
            'prod_demo_pack', 2, 2000, 159800, 'inr', v_grant);
  end if;
end
$$;
