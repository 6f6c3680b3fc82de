// Bot detection for deck views: the User-Agent, judged by isbot (a maintained list of crawler,
// preview, monitoring and headless-browser patterns). A request with no User-Agent at all is
// counted as a bot too: every browser sends one.
import { isbot } from "isbot";

export const USER_AGENT_MAX = 512;

export function isBotAgent(userAgent: string | null | undefined): boolean {
  const ua = userAgent?.trim();
  return !ua || isbot(ua);
}

/** What is stored of a header: trimmed, at most `max` characters, null when empty. */
export function clip(value: string | null | undefined, max = USER_AGENT_MAX): string | null {
  const v = value?.trim();
  return v ? v.slice(0, max) : null;
}
