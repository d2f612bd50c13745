import { InvalidInputError, SeedtaskError } from "../lib/errors.ts";

/**
 * Why Deno.serve could not listen on `host:port` (`flag` chose the port): a usage error when
 * the address is the mistake, a runtime one — one line with a hint, exit 1 — when something
 * else holds the port. Any other error passes through.
 */
export function listenError(err: unknown, host: string, port: number, flag: string): unknown {
  const where = `${host.includes(":") && !host.startsWith("[") ? `[${host}]` : host}:${port}`;
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
