// Presence of one room, as Phoenix.Presence groups it: key -> {metas: [{phx_ref, ...state}]}.
// Each tracking channel owns one meta under its presence key (several channels may share a
// key, e.g. one user in two tabs). Changes come back as the diff Phoenix broadcasts:
// {joins, leaves}; an update is a leave of the old meta plus a join whose meta carries
// phx_ref_prev.
import { randomBytes } from "node:crypto";

export type Meta = Record<string, unknown> & { phx_ref: string; phx_ref_prev?: string };
export type Grouped = Record<string, { metas: Meta[] }>;
export interface PresenceDiff {
  joins: Grouped;
  leaves: Grouped;
}

/** Phoenix.Tracker's refs: 8 random bytes, base64. */
const newRef = () => randomBytes(8).toString("base64");

export class RoomPresence<Owner> {
  private readonly byKey = new Map<string, Map<Owner, Meta>>();

  /** The whole state, for `presence_state`. */
  list(): Grouped {
    const out: Grouped = {};
    for (const [key, owners] of this.byKey) out[key] = { metas: [...owners.values()] };
    return out;
  }

  track(owner: Owner, key: string, state: Record<string, unknown>): PresenceDiff {
    const owners = this.byKey.get(key) ?? new Map<Owner, Meta>();
    this.byKey.set(key, owners);
    const previous = owners.get(owner);
    const meta: Meta = { ...state, phx_ref: newRef() };
    if (previous) meta.phx_ref_prev = previous.phx_ref;
    owners.set(owner, meta);
    return {
      joins: { [key]: { metas: [meta] } },
      leaves: previous ? { [key]: { metas: [previous] } } : {},
    };
  }

  untrack(owner: Owner, key: string): PresenceDiff | null {
    const owners = this.byKey.get(key);
    const meta = owners?.get(owner);
    if (!owners || !meta) return null;
    owners.delete(owner);
    if (owners.size === 0) this.byKey.delete(key);
    return { joins: {}, leaves: { [key]: { metas: [meta] } } };
  }
}
