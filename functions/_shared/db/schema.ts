// Kysely's view of the generated Supabase types (database.types.ts): one source of truth
// for supabase-js clients and for our server code. Tables are reachable as "schema.table";
// public ones also unqualified.
import type { ColumnType } from "kysely";
import type { Database } from "./database.types.ts";

type RequiredKeys<T> = { [K in keyof T]-?: object extends Pick<T, K> ? never : K }[keyof T];

type Relation = { Row: Record<string, unknown>; Insert?: Record<string, unknown>; Update?: Record<string, unknown> };

type InsertOf<R extends Relation, K> = R["Insert"] extends Record<string, unknown>
  ? K extends keyof R["Insert"] ? (K extends RequiredKeys<R["Insert"]> ? R["Insert"][K] : R["Insert"][K] | undefined)
  : never
  : never;

type UpdateOf<R extends Relation, K> = R["Update"] extends Record<string, unknown>
  ? K extends keyof R["Update"] ? Exclude<R["Update"][K], undefined> : never
  : never;

type KyselyRelation<R extends Relation> = {
  [K in keyof R["Row"]]: ColumnType<R["Row"][K], InsertOf<R, K>, UpdateOf<R, K>>;
};

type Relations<S extends keyof Database> = Database[S]["Tables"] & Database[S]["Views"];

type Qualified = UnionToIntersection<
  { [S in keyof Database]: { [T in keyof Relations<S> & string as `${S & string}.${T}`]: KyselyRelation<Relations<S>[T] & Relation> } }[keyof Database]
>;

type UnionToIntersection<U> = (U extends unknown ? (x: U) => void : never) extends (x: infer I) => void ? I : never;

export type DB = Qualified & { [T in keyof Relations<"public"> & string]: KyselyRelation<Relations<"public">[T] & Relation> };
export type { Database };
