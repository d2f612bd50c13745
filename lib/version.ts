import project from "../deno.json" with { type: "json" };

/** The seedtask version (deno.json's), reported by `--version`, `stats --json` and the HTTP API. */
export const VERSION: string = project.version;
