import type { DoctorReport } from "../table/doctor.ts";

/** The `seedtask doctor` report: one line per check, problems marked, a summary last. */
export function formatDoctor(report: DoctorReport, options: { emoji?: boolean } = {}): string {
  const ok = options.emoji ? "✅" : "ok  ";
  const bad = options.emoji ? "❌" : "FAIL";
  const lines = [`seedtask doctor: ${report.table} on ${report.target}`];
  for (const c of report.checks) {
    lines.push(`${c.ok ? ok : bad} ${c.message}`);
    if (c.examples && c.examples.length > 0) lines.push(`     e.g. ${c.examples.join(", ")}`);
  }
  lines.push(
    report.ok
      ? "No problems found."
      : `${report.problems} problem${report.problems === 1 ? "" : "s"} found.`,
  );
  return lines.join("\n") + "\n";
}
