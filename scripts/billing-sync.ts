// npm run billing:sync: full resync of Stripe products and prices into billing.products and
// billing.prices (anything Stripe no longer lists is marked inactive).
//   STRIPE_SECRET_KEY   the account to read (unset: the local stack's fake Stripe)
//   STRIPE_API_BASE     another API host (the fake: http://127.0.0.1:54326)
//   SUPABASE_DB_URL     the database (unset: the local stack's)
import { resyncCatalog } from "../functions/_shared/billing/catalog.ts";
import { createStripe } from "../functions/_shared/billing/stripe.ts";
import { createDb } from "../functions/_shared/db/client.ts";
import { databaseUrl, stackConfig } from "./lib/env.ts";

const cfg = stackConfig();
const key = process.env.STRIPE_SECRET_KEY || "sk_test_plinth_local_fake";
const base = process.env.STRIPE_API_BASE || (process.env.STRIPE_SECRET_KEY ? undefined : `http://127.0.0.1:${process.env.PLINTH_STRIPE_PORT ?? 54326}`);
const dbUrl = process.env.SUPABASE_DB_URL || databaseUrl(cfg);

const { db } = createDb(dbUrl, 2);
try {
  const pageSize = process.env.BILLING_SYNC_PAGE_SIZE ? Number(process.env.BILLING_SYNC_PAGE_SIZE) : undefined;
  const result = await resyncCatalog(createStripe(key, base), db, { pageSize });
  console.log(`synced ${result.products} products and ${result.prices} prices from ${base ?? "api.stripe.com"}; ${result.deactivated} no longer in Stripe marked inactive`);
} catch (err) {
  console.error(`billing:sync failed: ${(err as Error).message}`);
  process.exitCode = 1;
} finally {
  await db.destroy();
}
