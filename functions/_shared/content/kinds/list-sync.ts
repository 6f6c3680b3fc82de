// Brings a Y.Array of keyed Y.Maps to a target list with the fewest moves: elements that stay
// keep their Y.Map (and every relative position inside it, so comment anchors survive); only
// those removed or moved off the longest run already in order are deleted and re-inserted.
// Shared by the structured kinds (checklist items, deck cards).
import * as Y from "yjs";

/** Indexes (into `seq`) of a longest increasing subsequence: the elements that need not move. */
export function longestIncreasing(seq: number[]): Set<number> {
  const tails: number[] = [];
  const prev: number[] = new Array(seq.length).fill(-1);
  for (let i = 0; i < seq.length; i++) {
    let lo = 0;
    let hi = tails.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (seq[tails[mid]] < seq[i]) lo = mid + 1;
      else hi = mid;
    }
    if (lo > 0) prev[i] = tails[lo - 1];
    tails[lo] = i;
  }
  const keep = new Set<number>();
  for (let i = tails.length ? tails[tails.length - 1] : -1; i >= 0; i = prev[i]) keep.add(i);
  return keep;
}

export interface KeyedList<T> {
  /** The element's id, or null when the map is not a valid element (it is dropped). */
  keyOf(m: Y.Map<unknown>): string | null;
  idOf(item: T): string;
  create(item: T): Y.Map<unknown>;
  /** Changes `m` in place to hold `item` (only what differs). */
  update(m: Y.Map<unknown>, item: T): void;
}

export function syncKeyedArray<T>(arr: Y.Array<Y.Map<unknown>>, target: T[], list: KeyedList<T>): void {
  const have = arr.toArray();
  const wanted = new Map(target.map((t, i) => [list.idOf(t), i]));
  const seenIds = new Set<string>();
  // Old positions of surviving elements, in target order; those off the longest increasing run moved.
  const survivors: { old: number; at: number }[] = [];
  have.forEach((m, old) => {
    const id = m instanceof Y.Map ? list.keyOf(m) : null;
    if (id !== null && wanted.has(id) && !seenIds.has(id)) {
      seenIds.add(id);
      survivors.push({ old, at: wanted.get(id)! });
    }
  });
  survivors.sort((a, b) => a.at - b.at);
  const stable = new Set([...longestIncreasing(survivors.map((s) => s.old))].map((i) => survivors[i].old));
  for (let i = have.length - 1; i >= 0; i--) if (!stable.has(i)) arr.delete(i, 1);
  let j = 0;
  for (const item of target) {
    const current = j < arr.length ? arr.get(j) : undefined;
    if (current instanceof Y.Map && list.keyOf(current) === list.idOf(item)) list.update(current, item);
    else arr.insert(j, [list.create(item)]);
    j++;
  }
}
