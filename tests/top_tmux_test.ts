/**
 * `seedtask top` in a real terminal: tmux runs it in a detached session of a known size; the
 * test types keys (send-keys), resizes the window and reads the screen (capture-pane) and the
 * terminal's modes (alternate screen, cursor) as tmux sees them.
 */
import assert from "node:assert/strict";
import { eventually, insertFixture, TEST_DSN, type TestSchema, testSchema } from "./helpers.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;

function findTmux(): string | null {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":").concat(["/usr/bin"])) {
    try {
      if (Deno.statSync(`${dir}/tmux`).isFile) return `${dir}/tmux`;
    } catch {
      // not here
    }
  }
  return null;
}

const TMUX = findTmux();
if (!TMUX && Deno.env.get("CI") === "true") {
  throw new Error("tmux is not installed: .ci/run installs it (apt-get install tmux)");
}
if (!TMUX) {
  // deno-lint-ignore no-console -- the suite must say what it skipped
  console.error("skipped: tests/top_tmux_test.ts needs tmux (apt-get install tmux)");
}

/** A tmux server of its own (its own socket), killed at the end. */
class Tmux implements AsyncDisposable {
  readonly socket = `seedtask-test-${crypto.randomUUID().slice(0, 8)}`;

  async run(...args: string[]): Promise<string> {
    const out = await new Deno.Command(TMUX!, {
      args: ["-L", this.socket, "-f", "/dev/null", ...args],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout);
    if (!out.success) {
      throw new Error(`tmux ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
    }
    return text;
  }

  /** Starts `seedtask top` for `t` in a session `name` of `width` x `height`. */
  async start(
    name: string,
    t: TestSchema,
    width: number,
    height: number,
    noColor = false,
  ): Promise<void> {
    const deno = Deno.execPath();
    const args = ["run", "--allow-all", "--quiet", MAIN, "--dsn", TEST_DSN, "--table", t.table];
    const quoted = [deno, ...args, "top", "--interval", "500ms"].map((a) => `'${a}'`).join(" ");
    // A line before and after: the main screen must show both once top has left.
    const script = `echo BEFORE-TOP; ${quoted}; echo "EXITED $?"; sleep 600`;
    await this.run(
      "new-session",
      "-d",
      "-s",
      name,
      "-x",
      String(width),
      "-y",
      String(height),
      "env",
      "-u",
      "NO_COLOR",
      "TERM=xterm-256color",
      ...(noColor ? ["NO_COLOR=1"] : []),
      "sh",
      "-c",
      script,
    );
    await this.run("set-option", "-t", name, "window-size", "manual");
  }

  screen(name: string): Promise<string> {
    return this.run("capture-pane", "-p", "-t", name);
  }

  /** The screen with its attributes as escape sequences (colour, reverse video). */
  styled(name: string): Promise<string> {
    return this.run("capture-pane", "-p", "-e", "-t", name);
  }

  /** `#{alternate_on}` and `#{cursor_flag}`: 1/0 while top runs, 0/1 once it has restored. */
  async modes(name: string): Promise<{ alternate: boolean; cursor: boolean }> {
    const [alt, cursor] = (await this.run(
      "display-message",
      "-p",
      "-t",
      name,
      "#{alternate_on} #{cursor_flag}",
    )).trim().split(" ");
    return { alternate: alt === "1", cursor: cursor === "1" };
  }

  async waitFor(name: string, pattern: RegExp, what: string): Promise<string> {
    let last = "";
    try {
      await eventually(async () => pattern.test(last = await this.screen(name)), 30_000, what);
    } catch (err) {
      throw new Error(`${(err as Error).message}; the screen:\n${last}`);
    }
    return last;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.run("kill-server").catch(() => {});
  }
}

Deno.test({
  name:
    "top in tmux shows a frame, pauses with p, follows a resize and quits with q, restoring the terminal",
  ignore: !TMUX,
  fn: async () => {
    await using t = await testSchema();
    await insertFixture(t);
    await using tmux = new Tmux();
    await tmux.start("top", t, 80, 24);

    const first = await tmux.waitFor("top", /QUEUE BY TYPE/, "the first frame");
    assert.match(first, /queued 3 {2}/);
    assert.match(first, /every 500ms {2}type: all/);
    assert.doesNotMatch(first, /BEFORE-TOP/, "drawn on the alternate screen");
    assert.deepEqual(await tmux.modes("top"), { alternate: true, cursor: false });
    for (const line of first.split("\n")) assert.ok([...line].length <= 80, line);
    // At 80 columns the header is cut before the table's name.
    assert.match(first, /^ .* top of .*…$/m);
    assert.ok(!first.includes(t.table));

    // p pauses: the header says so, and the clock in it stops.
    await tmux.run("send-keys", "-t", "top", "p");
    const paused = await tmux.waitFor("top", /PAUSED/, "the paused header");
    const clock = paused.match(/^ (\d\d:\d\d:\d\d) UTC/)?.[1];
    assert.ok(clock, paused);
    await new Promise((r) => setTimeout(r, 1500));
    assert.match(await tmux.screen("top"), new RegExp(`^ ${clock} UTC {2}PAUSED`));
    await tmux.run("send-keys", "-t", "top", "p");
    await tmux.waitFor("top", /every 500ms/, "refreshing again");

    // A resize redraws at the new size: the header fits in 130 columns.
    await tmux.run("resize-window", "-t", "top", "-x", "130", "-y", "40");
    const wide = await tmux.waitFor("top", new RegExp(`top of .*${t.table}`), "the wider frame");
    assert.ok(wide.split("\n").some((l) => [...l].length > 80), "lines use the new width");

    // t cycles the type filter through the types seen; ? shows the help.
    await tmux.run("send-keys", "-t", "top", "t");
    await tmux.waitFor("top", /type: fact_search/, "the first type");
    await tmux.run("send-keys", "-t", "top", "?");
    await tmux.waitFor("top", /KEYS[\s\S]*q {2}quit/, "the help");
    await tmux.run("send-keys", "-t", "top", "x"); // any key leaves the help
    await tmux.waitFor("top", /QUEUE BY TYPE/, "the frame again");

    await tmux.run("send-keys", "-t", "top", "q");
    const after = await tmux.waitFor("top", /EXITED \d+/, "top to exit");
    assert.match(after, /BEFORE-TOP\s+EXITED 0/, "the main screen is back, nothing left on it");
    assert.deepEqual(await tmux.modes("top"), { alternate: false, cursor: true });
  },
});

Deno.test({
  name: "top in tmux restores the terminal on Ctrl-C, and shows a database error without exiting",
  ignore: !TMUX,
  fn: async () => {
    await using t = await testSchema();
    await insertFixture(t);
    await using tmux = new Tmux();
    await tmux.start("top", t, 100, 30);
    await tmux.waitFor("top", /QUEUE BY TYPE/, "the first frame");

    // The table goes away: the last data stays on screen, the error in the footer.
    await t.sql`alter table ${t.sql(t.table)} rename to gone`;
    const failing = await tmux.waitFor("top", /^! .*tasks.*\(data from/m, "the error line");
    assert.match(failing, /QUEUE BY TYPE/);
    await t.sql`alter table ${t.sql(`${t.schema}.gone`)} rename to tasks`;
    await tmux.waitFor("top", /updated \d\d:\d\d:\d\d UTC · p pause/, "recovery");

    await tmux.run("send-keys", "-t", "top", "C-c");
    const after = await tmux.waitFor("top", /EXITED \d+/, "top to exit");
    assert.match(after, /BEFORE-TOP\s+EXITED 0/);
    assert.deepEqual(await tmux.modes("top"), { alternate: false, cursor: true });
  },
});

Deno.test({
  name: "top in tmux draws colour and reverse video on a terminal, none with NO_COLOR",
  ignore: !TMUX,
  fn: async () => {
    await using t = await testSchema();
    await insertFixture(t);
    await using tmux = new Tmux();
    await tmux.start("colour", t, 100, 30);
    await tmux.start("plain", t, 100, 30, true);
    await tmux.waitFor("colour", /QUEUE BY TYPE/, "the coloured frame");
    await tmux.waitFor("plain", /QUEUE BY TYPE/, "the plain frame");
    const sgr = new RegExp(String.fromCharCode(27) + "\\[[0-9;]*m");
    assert.match(await tmux.styled("colour"), sgr);
    assert.doesNotMatch(await tmux.styled("plain"), sgr);
    for (const name of ["colour", "plain"]) await tmux.run("send-keys", "-t", name, "q");
    await tmux.waitFor("plain", /EXITED 0/, "top to exit");
  },
});
