#!/usr/bin/env node
// The `seedtask` command of the npm package (package.json "bin"): runs main.ts with the Deno
// binary of the `deno` npm package this package depends on, so Node alone is enough — no
// `deno` on PATH. Arguments, stdio and the exit code pass through; SIGINT, SIGTERM and SIGHUP
// are forwarded, so `seedtask dispatch` and `seedtask serve` shut down cleanly.
"use strict";
const { spawn } = require("node:child_process");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");

/** The Deno executable of the `deno` npm package (its postinstall puts it next to package.json). */
function denoExecutable() {
  let dir;
  try {
    dir = path.dirname(require.resolve("deno/package.json"));
  } catch {
    process.stderr.write(
      "error: seedtask needs the npm package deno, which is not installed next to it — " +
        "install seedtask from a tarball (npm pack, then npm install -g seedtask-<version>.tgz), " +
        "or run npm install in the checkout first\n",
    );
    process.exit(1);
  }
  const exe = path.join(dir, os.platform() === "win32" ? "deno.exe" : "deno");
  if (fs.existsSync(exe)) return { command: exe, args: [] };
  // Without its postinstall (npm --ignore-scripts), the package's own launcher finds the binary.
  return { command: process.execPath, args: [path.join(dir, "bin.cjs")] };
}

const root = path.join(__dirname, "..");
const deno = denoExecutable();
const child = spawn(
  deno.command,
  [
    ...deno.args,
    "run",
    "--allow-all",
    "--quiet",
    "--no-prompt",
    "--config",
    path.join(root, "deno.json"),
    path.join(root, "main.ts"),
    ...process.argv.slice(2),
  ],
  { stdio: "inherit" },
);
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.on(signal, () => child.kill(signal));
}
child.on("error", (err) => {
  process.stderr.write(`error: cannot start Deno for seedtask: ${err.message}\n`);
  process.exit(1);
});
child.on("exit", (code, signal) => {
  process.exit(code ?? 128 + (os.constants.signals[signal] ?? 0));
});
