/**
 * Charts drawn on the server as SVG: no script, no library, styled by the stylesheet (the
 * series colours follow the theme). Every bar has a <title>, so hovering shows its numbers.
 */
import type { Html } from "./view.tsx";

/** One bucket of a chart: its label and a value per series. */
export interface Bucket {
  label: string;
  /** A longer label for the tooltip (a full date or time range). */
  title?: string;
  values: Record<string, number>;
}

/** A series: its key in the buckets' values, its name and its CSS class (`c-<name>`). */
export interface Series {
  key: string;
  name: string;
  cls: string;
}

const W = 640;
const H = 150;
const PAD = { left: 36, right: 6, top: 8, bottom: 18 };

function niceMax(max: number): number {
  if (max <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(max));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= max) return m * p;
  return 10 * p;
}

function short(n: number): string {
  if (n >= 1e6) return `${+(n / 1e6).toFixed(1)}M`;
  if (n >= 1e3) return `${+(n / 1e3).toFixed(1)}k`;
  return String(n);
}

/** Stacked bars, one per bucket, with a y axis and a few x labels. */
export function BarChart(
  props: { buckets: Bucket[]; series: Series[]; label: string },
): Html {
  const { buckets, series } = props;
  const totals = buckets.map((b) => series.reduce((s, x) => s + (b.values[x.key] ?? 0), 0));
  const max = niceMax(Math.max(2, ...totals));
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const slot = plotW / Math.max(1, buckets.length);
  const barW = Math.max(1, slot * 0.72);
  const y = (v: number) => PAD.top + plotH - (v / max) * plotH;
  const every = Math.max(1, Math.ceil(buckets.length / 8));
  return (
    <svg
      class="chart"
      viewBox={`0 0 ${W} ${H}`}
      role="img"
      aria-label={props.label}
      preserveAspectRatio="none"
    >
      {[0, 0.5, 1].map((f) => (
        <g>
          <line class="axis" x1={PAD.left} x2={W - PAD.right} y1={y(max * f)} y2={y(max * f)} />
          <text x={PAD.left - 4} y={y(max * f) + 3} text-anchor="end">{short(max * f)}</text>
        </g>
      ))}
      {buckets.map((b, i) => {
        let base = 0;
        const x = PAD.left + i * slot + (slot - barW) / 2;
        const tip = `${b.title ?? b.label}: ${
          series.map((s) => `${s.name} ${b.values[s.key] ?? 0}`).join(", ")
        }`;
        return (
          <g>
            <title>{tip}</title>
            <rect
              x={x}
              y={PAD.top}
              width={barW}
              height={plotH}
              fill="transparent"
            />
            {series.map((s) => {
              const v = b.values[s.key] ?? 0;
              if (v <= 0) return null;
              const top = y(base + v);
              const h = y(base) - top;
              base += v;
              return (
                <rect
                  key={s.key}
                  class={s.cls}
                  x={x}
                  y={top}
                  width={barW}
                  height={Math.max(h, 0.5)}
                />
              );
            })}
            {i % every === 0 && (
              <text x={x + barW / 2} y={H - 5} text-anchor="middle">{b.label}</text>
            )}
          </g>
        );
      })}
    </svg>
  );
}

/** The chart's legend. */
export function Legend(props: { series: Series[] }): Html {
  return (
    <div class="legend">
      {props.series.map((s) => (
        <span>
          <span class={`sw sw-${s.cls.replace(/^c-/, "")}`} aria-hidden="true"></span>
          {s.name}
        </span>
      ))}
    </div>
  );
}
