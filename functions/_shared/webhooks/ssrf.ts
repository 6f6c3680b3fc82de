// SSRF guard for outbound webhooks: a customer-supplied URL must not reach our own network.
// The host is resolved and every address checked; private, loopback, link-local, unique-local,
// CGNAT, multicast, reserved and unspecified ranges (IPv4 and IPv6, including IPv4 embedded in
// IPv6) are refused. PLINTH_WEBHOOKS_ALLOW_LOOPBACK opens loopback only, for local dev and tests.
// node:dns/promises works in Deno and Node alike (Deno.resolveDns would not run under vitest).
// Known limit: fetch resolves the name again, so a rebinding DNS server could still switch the
// address between check and connect; the check runs before every attempt to keep that window small.
import { lookup as dnsLookup } from "node:dns/promises";

export class SsrfError extends Error {
  override name = "SsrfError";
}

export type Lookup = (host: string) => Promise<string[]>;

const systemLookup: Lookup = async (host) => (await dnsLookup(host, { all: true, verbatim: true })).map((a) => a.address);

type Range = [prefix: number[], bits: number, label: string];

// IPv4 ranges as [octets, prefix length].
const V4_BLOCKED: Range[] = [
  [[0, 0, 0, 0], 8, "unspecified"],
  [[10, 0, 0, 0], 8, "private"],
  [[100, 64, 0, 0], 10, "CGNAT"],
  [[127, 0, 0, 0], 8, "loopback"],
  [[169, 254, 0, 0], 16, "link-local"],
  [[172, 16, 0, 0], 12, "private"],
  [[192, 0, 0, 0], 24, "reserved"],
  [[192, 0, 2, 0], 24, "documentation"],
  [[192, 88, 99, 0], 24, "6to4 relay anycast"],
  [[192, 168, 0, 0], 16, "private"],
  [[198, 18, 0, 0], 15, "benchmarking"],
  [[198, 51, 100, 0], 24, "documentation"],
  [[203, 0, 113, 0], 24, "documentation"],
  [[224, 0, 0, 0], 4, "multicast"],
  [[240, 0, 0, 0], 4, "reserved"],
];

// IPv6 ranges as [16-bit groups, prefix length].
const V6_BLOCKED: Range[] = [
  [[0, 0, 0, 0, 0, 0, 0, 0], 128, "unspecified"],
  [[0, 0, 0, 0, 0, 0, 0, 1], 128, "loopback"],
  [[0x100, 0, 0, 0], 64, "discard"],
  [[0x64, 0xff9b, 0x1], 48, "NAT64 local-use"],
  [[0x2001, 0], 32, "Teredo"],
  [[0x2001, 0xdb8], 32, "documentation"],
  [[0xfc00], 7, "unique-local"],
  [[0xfe80], 10, "link-local"],
  [[0xfec0], 10, "site-local"],
  [[0xff00], 8, "multicast"],
];

function matches(value: number[], width: number, [prefix, bits]: Range): boolean {
  for (let i = 0; bits > 0; i++, bits -= width) {
    const take = Math.min(width, bits);
    const mask = ((1 << take) - 1) << (width - take);
    if (((value[i] ?? 0) & mask) !== ((prefix[i] ?? 0) & mask)) return false;
  }
  return true;
}

function parseV4(ip: string): number[] | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(ip);
  if (!m) return undefined;
  const octets = m.slice(1).map(Number);
  return octets.every((o) => o <= 255) ? octets : undefined;
}

function parseV6(input: string): number[] | undefined {
  let ip = input.replace(/^\[|\]$/g, "").replace(/%.*$/, "").toLowerCase();
  // A trailing dotted quad (::ffff:1.2.3.4) becomes two groups.
  const quad = /(\d{1,3}(?:\.\d{1,3}){3})$/.exec(ip);
  if (quad) {
    const v4 = parseV4(quad[1]);
    if (!v4) return undefined;
    ip = ip.slice(0, -quad[1].length) + `${((v4[0] << 8) | v4[1]).toString(16)}:${((v4[2] << 8) | v4[3]).toString(16)}`;
  }
  const halves = ip.split("::");
  if (halves.length > 2) return undefined;
  const part = (s: string) => (s === "" ? [] : s.split(":"));
  const head = part(halves[0]);
  const tail = halves.length === 2 ? part(halves[1]) : [];
  const fill = halves.length === 2 ? 8 - head.length - tail.length : 0;
  if (fill < 0 || (halves.length === 1 && head.length !== 8)) return undefined;
  const groups = [...head, ...Array(fill).fill("0"), ...tail];
  if (groups.length !== 8 || !groups.every((g) => /^[0-9a-f]{1,4}$/.test(g))) return undefined;
  return groups.map((g) => parseInt(g, 16));
}

/** The IPv4 address an IPv6 address carries (mapped, compatible, NAT64, 6to4), if any. */
function embeddedV4(g: number[]): number[] | undefined {
  const v4 = (hi: number, lo: number) => [hi >> 8, hi & 0xff, lo >> 8, lo & 0xff];
  const zeros = (from: number, to: number) => g.slice(from, to).every((x) => x === 0);
  if (zeros(0, 5) && g[5] === 0xffff) return v4(g[6], g[7]); // ::ffff:a.b.c.d
  if (zeros(0, 4) && g[4] === 0xffff && g[5] === 0) return v4(g[6], g[7]); // ::ffff:0:a.b.c.d (SIIT)
  if (zeros(0, 6) && (g[6] !== 0 || g[7] > 1)) return v4(g[6], g[7]); // ::a.b.c.d (deprecated)
  if (g[0] === 0x64 && g[1] === 0xff9b && zeros(2, 6)) return v4(g[6], g[7]); // NAT64
  if (g[0] === 0x2002) return v4(g[1], g[2]); // 6to4
  return undefined;
}

/** Why an address may not be reached ("loopback", "private", …), or undefined if it may. */
export function blockedReason(ip: string): string | undefined {
  const v4 = parseV4(ip);
  if (v4) {
    if (v4.every((o) => o === 255)) return "broadcast";
    return V4_BLOCKED.find((r) => matches(v4, 8, r))?.[2];
  }
  const v6 = parseV6(ip);
  if (!v6) return "unparseable";
  const inner = embeddedV4(v6);
  if (inner) return blockedReason(inner.join("."));
  return V6_BLOCKED.find((r) => matches(v6, 16, r))?.[2];
}

export interface TargetPolicy {
  allowLoopback: boolean;
  lookup?: Lookup;
}

/**
 * Refuses a delivery URL whose host resolves to any forbidden address, and returns the
 * addresses it checked: the delivery connects to one of these, never to a fresh lookup (which
 * a rebinding DNS server could answer differently). Plain http is allowed only to loopback,
 * and only when loopback is allowed (local dev and tests).
 */
export async function resolveDeliverable(rawUrl: string, policy: TargetPolicy): Promise<{ url: URL; addresses: string[] }> {
  let url: URL;
  try {
    url = new URL(rawUrl);
  } catch {
    throw new SsrfError("the endpoint URL is not a valid URL");
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") throw new SsrfError(`scheme ${url.protocol} is not allowed`);
  if (url.username || url.password) throw new SsrfError("endpoint URLs may not carry credentials");
  const host = url.hostname.replace(/^\[|\]$/g, "");
  let addresses: string[];
  try {
    addresses = await (policy.lookup ?? systemLookup)(host);
  } catch (err) {
    throw new SsrfError(`cannot resolve ${host}: ${(err as { code?: string }).code ?? (err as Error).message}`);
  }
  if (addresses.length === 0) throw new SsrfError(`cannot resolve ${host}: no addresses`);
  let allLoopback = true;
  for (const address of addresses) {
    const reason = blockedReason(address);
    if (reason !== "loopback") allLoopback = false;
    if (reason && !(reason === "loopback" && policy.allowLoopback)) {
      // The address itself stays out of the message: attempts are readable by org admins.
      throw new SsrfError(`refused: ${host} resolves to a ${reason} address`);
    }
  }
  if (url.protocol === "http:" && !(policy.allowLoopback && allLoopback)) {
    throw new SsrfError("plain http is not allowed; use https");
  }
  return { url, addresses };
}

export async function assertDeliverable(rawUrl: string, policy: TargetPolicy): Promise<void> {
  await resolveDeliverable(rawUrl, policy);
}
