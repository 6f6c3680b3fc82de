// Waiting for the stack's worker: one budget and one polling helper for every test file.
import { admin } from "./db.ts";

/**
 * How long a test waits for the shared worker: generous (under vitest's 60 s test timeout, so
 * the failure names what never happened), because every file's jobs go through one worker on a
 * loaded machine. A wait is for an outcome, never a measure of speed.
 */
export const WAIT_MS = 45_000;

/**
 * Polls fn until it returns a truthy value and returns it; fails the test, naming `what` and the
 * last value seen, if it never does within the budget. A wait that never ends cannot pass.
 */
export async function waitFor<T>(what: string, fn: () => Promise<T>, timeoutMs = WAIT_MS): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last: ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Waits for an outbox consumer's receipt of an event: after it, everything the consumer does for the event is committed. */
export async function waitForReceipt(eventId: string, consumer: string, timeoutMs = WAIT_MS): Promise<void> {
  await waitFor(`the ${consumer} consumer's receipt of event ${eventId}`, async () =>
    (await admin.query("select 1 from notify.consumer_receipts where event_id = $1 and consumer = $2", [eventId, consumer])).rowCount,
  timeoutMs);
}
