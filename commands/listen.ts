import { InvalidInputError, SeedtaskError } from "../lib/errors.ts";

/**
 * Why Deno.serve could not listen on `host:port` (`flag` chose the port): a usage error when
 * the address is the mistake, a runtime one — one line with a hint, exit 1 — when something
 * else holds the port. Any other error passes through.
 */
export function listenError(err: unknown, host: string, port: number, flag: string): unknown {
  const where = `${urlHost(host)}:${port}`;
  if (err instanceof Deno.errors.AddrInUse) {
    return new SeedtaskError("address_in_use", `Cannot listen on ${where}: the address is in use`, {
      hint: `stop what listens there or choose another ${flag}`,
    });
  }
  if (err instanceof Deno.errors.AddrNotAvailable || err instanceof Deno.errors.PermissionDenied) {
    return new InvalidInputError(
      `Cannot listen on ${where}: ${
        err instanceof Deno.errors.AddrNotAvailable
          ? "not an address of this machine"
          : "permission denied"
      }`,
    );
  }
  if (err instanceof URIError || /lookup address|Name or service/i.test(String(err))) {
    return new InvalidInputError(`Cannot listen on ${where}: host "${host}" not found`);
  }
  return err;
}

/** `host` as a URL writes it: an IPv6 address in brackets. */
export function urlHost(host: string): string {
  return host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
}

/**
 * Calls `onSignal` on each SIGINT and (but on Windows, which has none) SIGTERM: how a
 * long-running command is asked to stop. Returns the function that removes the listeners.
 */
export function onStopSignals(onSignal: (name: "SIGINT" | "SIGTERM") => void): () => void {
  const names = Deno.build.os === "windows" ? ["SIGINT"] as const : ["SIGINT", "SIGTERM"] as const;
  const handlers = names.map((name) => [name, () => onSignal(name)] as const);
  for (const [name, fn] of handlers) Deno.addSignalListener(name, fn);
  return () => {
    for (const [name, fn] of handlers) Deno.removeSignalListener(name, fn);
  };
}
