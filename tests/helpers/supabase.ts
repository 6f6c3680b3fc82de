// The official client against the local stack's gateway, as an app would build it:
// createClient(projectUrl, anonKey, { accessToken }) for a signed-in user, or the bare key.
import { createClient, type SupabaseClient } from "@supabase/supabase-js";
import { inject } from "vitest";
import WebSocket from "ws";
import { userToken } from "../../scripts/lib/keys.ts";
import type { TestUser } from "./db.ts";

const stack = inject("stack");

/** A user access token with GoTrue's claims, signed with the stack's secret. */
export function tokenFor(user: TestUser, opts: { aal?: "aal1" | "aal2"; expiresIn?: number | string } = {}) {
  return userToken(stack.jwtSecret, user, opts);
}

/**
 * A supabase-js client. With `token` it acts as that user (the `accessToken` option, as apps
 * using third-party auth do); without, as the key's role (anon by default, or service_role).
 * Node 20 has no global WebSocket, so realtime-js gets `ws` as its transport.
 */
export function client(opts: { token?: string | (() => Promise<string>); key?: "anon" | "service_role" } = {}): SupabaseClient {
  const key = opts.key === "service_role" ? stack.serviceRoleKey : stack.anonKey;
  const token = opts.token;
  return createClient(stack.supabaseUrl, key, {
    auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
    realtime: { transport: WebSocket as never },
    ...(token ? { accessToken: typeof token === "string" ? async () => token : token } : {}),
  });
}

/** A client signed in as the user. */
export async function userClient(user: TestUser, opts: { aal?: "aal1" | "aal2"; expiresIn?: number | string } = {}) {
  return client({ token: await tokenFor(user, opts) });
}
