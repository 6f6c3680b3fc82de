// The users sql/seed creates, so `npm start` can print a ready token for each.
export const SEED_USERS = [
  { id: "a0000000-0000-4000-8000-000000000001", email: "alice@acme.test", role: "acme owner" },
  { id: "a0000000-0000-4000-8000-000000000002", email: "adam@acme.test", role: "acme admin" },
  { id: "a0000000-0000-4000-8000-000000000003", email: "mia@acme.test", role: "acme member" },
  { id: "a0000000-0000-4000-8000-000000000004", email: "victor@acme.test", role: "acme viewer" },
  { id: "b0000000-0000-4000-8000-000000000001", email: "gina@globex.test", role: "globex owner" },
  { id: "b0000000-0000-4000-8000-000000000002", email: "gus@globex.test", role: "globex admin" },
  { id: "b0000000-0000-4000-8000-000000000003", email: "max@globex.test", role: "globex member" },
  { id: "b0000000-0000-4000-8000-000000000004", email: "vera@globex.test", role: "globex viewer" },
  { id: "c0000000-0000-4000-8000-000000000001", email: "sam@consult.test", role: "acme member + globex admin" },
] as const;

export const SEED_ORGS = [
  { id: "a0000000-0000-4000-8000-00000000a000", slug: "acme" },
  { id: "b0000000-0000-4000-8000-00000000b000", slug: "globex" },
] as const;

export const SEED_API_KEYS = [
  { org: "acme", key: "plk_acmedemo0001_acme-demo-secret-0000000000000000000000", scopes: ["content.read"] },
  { org: "globex", key: "plk_globexdemo01_globex-demo-secret-00000000000000000000", scopes: ["content.read"] },
] as const;
