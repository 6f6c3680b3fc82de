// Card beacons, batched (Papermark-style): how long each card of the view's revision was on
// screen. A batch is all or nothing: every event must name the view's deck and revision and a
// card of that revision, or the batch is refused with each bad item named and nothing is
// written; so is a batch that would make the view's dwell add up to more than the time since it
// started. Exactly once under retries: an event is unique per view and key (its seq, or its card
// and end time), so a batch sent again inserts nothing new (and says so: accepted 0, duplicates n).
//
// Who may send: for a view started through a link, whoever holds its viewer key (the api stores
// only its hash); for a member's view, that signed-in user. Anyone else learns only "no such
// view". One service transaction: the view is locked (batches of one view take turns), the events inserted, and the
// view's last_seen_at moved when something was new (the scheduled rollup's watermark).
import { sql } from "kysely";
import { z } from "zod";
import { asService, type Db } from "../../db/client.ts";
import { ApiError } from "../../http/errors.ts";
import { CARD_ID } from "../kind.ts";

export const MAX_BATCH = 100;
export const MAX_DURATION_MS = 30 * 60 * 1000;
/** Events one view may hold: a long session of a 200-card deck, not a firehose. */
export const MAX_EVENTS_PER_VIEW = 5000;
/** A view takes beacons for this long after it started. */
export const VIEW_TTL_HOURS = 24;
/** How far a beacon's own clock may sit from the view's start and the server's now. */
export const CLOCK_SLACK_MS = 24 * 60 * 60 * 1000;
/**
 * A view's beacons may add up to at most the time since it started, plus 10% and 2 minutes
 * (client timers, network): more is a broken or forged client, and would inflate every figure.
 */
export const dwellAllowanceMs = (elapsedMs: number) => Math.max(0, elapsedMs) * 1.1 + 120_000;

export const Beacon = z.strictObject({
  deckId: z.string().uuid(),
  revision: z.number().int().positive(),
  cardId: z.string().regex(CARD_ID),
  durationMs: z.number().int().min(0).max(MAX_DURATION_MS),
  ts: z.string().datetime({ offset: true }),
  seq: z.number().int().min(0).max(1_000_000_000).optional(),
});
export type Beacon = z.infer<typeof Beacon>;

export interface BeaconCaller {
  /** The signed-in user who sent the batch, if any. */
  userId: string | null;
  /** The viewer key sent with the batch, if any. */
  viewerKey: string | null;
}

export interface BeaconResult {
  accepted: number;
  duplicates: number;
}

interface ViewRow {
  id: string;
  org_id: string;
  document_id: string;
  revision: number;
  source: "member" | "link";
  user_id: string | null;
  key_matches: boolean;
  bot: boolean;
  expired: boolean;
  started_ms: number;
  now_ms: number;
  events: number;
  card_ids: string[];
}

const noSuchView = () => new ApiError(404, "view_not_found", "no such view (start one with POST /deck/views)");

export async function recordBeacons(db: Db, viewId: string, caller: BeaconCaller, events: Beacon[]): Promise<BeaconResult> {
  return await asService(db, async (tx) => {
    const { rows: [view] } = await sql<ViewRow>`
      select v.id, v.org_id, v.document_id, v.revision, v.source, v.user_id, v.bot,
             v.viewer_key = 'k:' || encode(sha256(convert_to(${caller.viewerKey}::text, 'UTF8')), 'hex') as key_matches,
             v.started_at < now() - make_interval(hours => ${VIEW_TTL_HOURS}) as expired,
             (extract(epoch from v.started_at) * 1000)::float8 as started_ms, (extract(epoch from now()) * 1000)::float8 as now_ms,
             (select count(*) from deck.card_events e where e.view_id = v.id)::int as events,
             r.card_ids
      from deck.views v join deck.view_revisions r on r.document_id = v.document_id and r.revision = v.revision
      where v.id = ${viewId}::uuid
      for no key update of v`.execute(tx);
    if (!view) throw noSuchView();
    const allowed = view.source === "link" ? caller.viewerKey !== null && view.key_matches : caller.userId !== null && caller.userId === view.user_id;
    if (!allowed) {
      if (view.source === "member" && caller.userId === null && caller.viewerKey === null) throw new ApiError(401, "unauthorized", "this view belongs to a signed-in reader: send their access token");
      throw noSuchView();
    }
    if (view.expired) throw new ApiError(410, "view_expired", `a view takes beacons for ${VIEW_TTL_HOURS} hours: start a new one`);

    const positions = new Map(view.card_ids.map((id, i) => [id, i]));
    const problems: { index: number; message: string }[] = [];
    events.forEach((e, index) => {
      const ts = Date.parse(e.ts);
      if (e.deckId !== view.document_id) problems.push({ index, message: "this view is of another deck" });
      else if (e.revision !== view.revision) problems.push({ index, message: `this view shows revision ${view.revision}: start a new view for another revision` });
      else if (!positions.has(e.cardId)) problems.push({ index, message: `card "${e.cardId}" is not in revision ${view.revision}` });
      else if (ts < view.started_ms - CLOCK_SLACK_MS || ts > view.now_ms + CLOCK_SLACK_MS) problems.push({ index, message: "ts is too far from the view's time" });
    });
    if (problems.length > 0) throw new ApiError(400, "invalid_beacons", "some beacons do not belong to this view: nothing was recorded", problems);
    if (view.events + events.length > MAX_EVENTS_PER_VIEW) {
      throw new ApiError(429, "view_full", `a view holds at most ${MAX_EVENTS_PER_VIEW} beacons: start a new one`);
    }

    const rows = events.map((e) => ({
      card_id: e.cardId,
      position: positions.get(e.cardId)!,
      duration_ms: e.durationMs,
      seq: e.seq ?? null,
      event_key: e.seq !== undefined ? `s:${e.seq}` : `c:${e.cardId}@${Date.parse(e.ts)}`,
      ts: new Date(Date.parse(e.ts)).toISOString(),
    }));
    const { rows: inserted } = await sql<{ id: number }>`
      insert into deck.card_events (org_id, view_id, document_id, revision, card_id, position, duration_ms, seq, event_key, bot, ts)
      select ${view.org_id}::uuid, ${view.id}::uuid, ${view.document_id}::uuid, ${view.revision}::int,
             r.card_id, r.position, r.duration_ms, r.seq, r.event_key, ${view.bot}, r.ts
      from jsonb_to_recordset(${JSON.stringify(rows)}::jsonb)
        as r (card_id text, position int, duration_ms int, seq int, event_key text, ts timestamptz)
      on conflict (view_id, event_key) do nothing
      returning id`.execute(tx);
    if (inserted.length > 0) {
      // Checked after the insert, so a resent event is not counted twice; a refusal rolls it back.
      const { rows: [{ dwell }] } = await sql<{ dwell: number }>`
        select coalesce(sum(duration_ms), 0)::float8 as dwell from deck.card_events where view_id = ${view.id}::uuid`.execute(tx);
      if (dwell > dwellAllowanceMs(view.now_ms - view.started_ms)) {
        throw new ApiError(400, "invalid_beacons", "these beacons add up to more time on the cards than has passed since the view started: nothing was recorded");
      }
      await sql`update deck.views set last_seen_at = now() where id = ${view.id}::uuid`.execute(tx);
    }
    return { accepted: inserted.length, duplicates: events.length - inserted.length };
  });
}
