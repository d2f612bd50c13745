/**
 * Serving the app under a path prefix, for a reverse proxy that forwards `/seedtask/...` as it
 * is: `withBasePath("/seedtask", app.fetch)` answers `/seedtask/x` as the app answers `/x`,
 * and anything outside the prefix with a 404. The app is told the prefix too (AppDeps.basePath)
 * so the console's links and cookie carry it.
 */
import { InvalidInputError } from "../lib/errors.ts";

/** Checks and normalises `--base-path`: "" or "/a/b" (no trailing slash). */
export function normaliseBasePath(given: string): string {
  const path = given.replace(/\/+$/, "");
  if (path === "") return "";
  if (!/^(\/[A-Za-z0-9._~-]+)+$/.test(path) || path.split("/").some((p) => /^\.+$/.test(p))) {
    throw new InvalidInputError(
      `Invalid --base-path "${given.slice(0, 100)}": expected a path such as /seedtask`,
      "letters, digits and -._~ between slashes",
    );
  }
  return path;
}

/** A fetch handler serving `handler` under `basePath` (which {@link normaliseBasePath} made). */
export function withBasePath(
  basePath: string,
  handler: (request: Request, info?: Deno.ServeHandlerInfo) => Response | Promise<Response>,
): (request: Request, info?: Deno.ServeHandlerInfo) => Response | Promise<Response> {
  if (basePath === "") return handler;
  return (request, info) => {
    const url = new URL(request.url);
    const path = url.pathname;
    if (path !== basePath && !path.startsWith(`${basePath}/`)) {
      return Response.json(
        { error: { code: "not_found", message: `Not under the base path ${basePath}` } },
        { status: 404 },
      );
    }
    url.pathname = path.slice(basePath.length) || "/";
    return handler(new Request(url, request), info);
  };
}
