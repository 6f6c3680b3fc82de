// Input that Postgres can never store: the NUL character (U+0000). A text or jsonb value holding
// one fails in SQL with 22021/22P05, so every boundary refuses it first, naming where it was.

/** The dotted path of the first key or string holding a NUL in a parsed JSON value; undefined if none. */
export function nulPath(value: unknown): string | undefined {
  const stack: [unknown, string][] = [[value, ""]];
  while (stack.length) {
    const [v, at] = stack.pop()!;
    if (typeof v === "string") {
      if (v.includes("\u0000")) return at || "(body)";
    } else if (Array.isArray(v)) {
      v.forEach((item, i) => stack.push([item, at ? `${at}.${i}` : String(i)]));
    } else if (v !== null && typeof v === "object") {
      for (const [k, item] of Object.entries(v)) {
        const here = at ? `${at}.${k}` : k;
        if (k.includes("\u0000")) return `${here.replaceAll("\u0000", "\\u0000")} (a key)`;
        stack.push([item, here]);
      }
    }
  }
  return undefined;
}

/** Where a NUL hides in a request's URL: "path", "query.<name>", or undefined. */
export function nulInUrl(url: URL): string | undefined {
  let path = url.pathname;
  try {
    path = decodeURIComponent(path);
  } catch {
    // A malformed escape is the router's to refuse; only a decodable %00 matters here.
  }
  if (path.includes("\u0000") || /%00/i.test(url.pathname)) return "path";
  for (const [k, v] of url.searchParams) {
    if (k.includes("\u0000") || v.includes("\u0000")) return `query.${k.replaceAll("\u0000", "\\u0000")}`;
  }
  return undefined;
}

/**
 * Where a NUL hides in a request body given as text: a JSON value or key, a form field, or the raw
 * text of anything else. Binary bodies (uploads) are not passed here.
 */
export function nulInBody(text: string, contentType: string): string | undefined {
  if (/application\/x-www-form-urlencoded/i.test(contentType)) {
    for (const [k, v] of new URLSearchParams(text)) {
      if (k.includes("\u0000") || v.includes("\u0000")) return `body.${k.replaceAll("\u0000", "\\u0000")}`;
    }
    return undefined;
  }
  if (!text.includes("\\u0000") && !text.includes("\u0000")) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return text.includes("\u0000") ? "body" : undefined;
  }
  const at = nulPath(parsed);
  return at === undefined ? undefined : at === "(body)" ? "body" : `body.${at}`;
}
