/** The seedtask version, reported by `--version`, `stats --json` and the HTTP API. */
export const VERSION = "0.1.0";
