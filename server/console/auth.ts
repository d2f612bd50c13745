/**
 * Sign-in and cross-site protection of the console.
 *
 * The token is entered once on the sign-in page; the browser then keeps a session cookie
 * (HttpOnly, SameSite=Strict, Secure over https) whose value is an HMAC of a fixed label under
 * the token: it proves knowledge of the token without carrying it, needs no server-side state
 * (a restart keeps sessions; changing the token ends them all) and is compared in constant time.
 *
 * Every state-changing request is a POST that must (1) not come from another site: an Origin
 * header naming another host, or `Sec-Fetch-Site: cross-site`, is refused; and (2) carry the
 * form's CSRF field, another HMAC under the token that only a signed-in page shows.
 */
import type { Context } from "hono";
import { getCookie, setCookie } from "hono/cookie";

/** The session cookie's name. */
export const SESSION_COOKIE = "seedtask_session";

/** How long a session lasts, seconds (a week). */
const SESSION_MAX_AGE_S = 7 * 24 * 3600;

const encoder = new TextEncoder();

function base64url(bytes: ArrayBuffer): string {
  let text = "";
  for (const b of new Uint8Array(bytes)) text += String.fromCharCode(b);
  return btoa(text).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

/** Compares two strings in time that depends only on their lengths. */
export function sameText(a: string, b: string): boolean {
  const x = encoder.encode(a);
  const y = encoder.encode(b);
  let diff = x.length ^ y.length;
  for (let i = 0; i < Math.max(x.length, y.length); i++) diff |= (x[i] ?? 0) ^ (y[i] ?? 0);
  return diff === 0;
}

/** The console's secrets derived from the token: the session cookie and the CSRF field. */
export class ConsoleKeys {
  private constructor(readonly session: string, readonly csrf: string) {}

  static async derive(token: string): Promise<ConsoleKeys> {
    const key = await crypto.subtle.importKey(
      "raw",
      encoder.encode(token),
      { name: "HMAC", hash: "SHA-256" },
      false,
      ["sign"],
    );
    const mac = async (label: string) =>
      base64url(await crypto.subtle.sign("HMAC", key, encoder.encode(label)));
    return new ConsoleKeys(
      await mac("seedtask console session v1"),
      await mac("seedtask console csrf v1"),
    );
  }
}

/** Whether the request is over https (directly, or as a proxy in front says). */
function isHttps(c: Context): boolean {
  return new URL(c.req.url).protocol === "https:" ||
    c.req.header("x-forwarded-proto")?.split(",")[0]?.trim() === "https";
}

/** Whether the request carries the session cookie of `keys`. */
export function signedIn(c: Context, keys: ConsoleKeys | undefined): boolean {
  if (!keys) return false;
  const value = getCookie(c, SESSION_COOKIE);
  return value !== undefined && sameText(value, keys.session);
}

/** Sets the session cookie, scoped to the console's path. */
export function startSession(c: Context, keys: ConsoleKeys, path: string): void {
  setCookie(c, SESSION_COOKIE, keys.session, {
    path,
    httpOnly: true,
    sameSite: "Strict",
    secure: isHttps(c),
    maxAge: SESSION_MAX_AGE_S,
  });
}

/** Clears the session cookie. */
export function endSession(c: Context, path: string): void {
  setCookie(c, SESSION_COOKIE, "", {
    path,
    httpOnly: true,
    sameSite: "Strict",
    secure: isHttps(c),
    maxAge: 0,
  });
}

/**
 * Why a POST looks cross-site, or null when it does not: the Origin header (sent by browsers
 * on every POST) must name the host the request was sent to, and Sec-Fetch-Site must not say
 * cross-site. A request with neither header is not from a browser form of another site.
 */
export function crossSiteReason(c: Context): string | null {
  const site = c.req.header("sec-fetch-site");
  if (site === "cross-site" || site === "same-site") return `Sec-Fetch-Site is ${site}`;
  const origin = c.req.header("origin");
  if (origin === undefined) return null;
  let host: string;
  try {
    host = new URL(origin).host;
  } catch {
    return "the Origin header is not a URL";
  }
  const expected = [c.req.header("x-forwarded-host")?.split(",")[0]?.trim(), c.req.header("host")]
    .filter((h): h is string => !!h);
  if (expected.length === 0) expected.push(new URL(c.req.url).host);
  return expected.some((h) => h.toLowerCase() === host.toLowerCase())
    ? null
    : "the Origin header names another site";
}
