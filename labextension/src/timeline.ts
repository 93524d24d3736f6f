/**
 * The slot-occupancy timeline: for the run and each group, a step chart of running actions over
 * time with the capacity drawn as a dashed line, and the utilisation (mean running / capacity).
 *
 * Each chart is a `stepChart` (an inline SVG stretched to the row's width); labels and the time
 * axis are HTML, so text never stretches.
 */
import { Series, Time, Timeline } from './api';
import { h } from './dom';
import { formatDuration } from './format';
import { isRateLane, rateRow } from './rateLane';
import { stepChart } from './stepChart';

export interface SeriesStats {
  /** Highest number running at once. */
  peak: number;
  /** Time-weighted mean of running (the server's, over the run; else over the series' active span). */
  mean: number;
  /** mean / capacity, or null without a capacity. */
  utilisation: number | null;
  /** The active span: from the first point to the last drop to zero (or `end`). */
  from: Time;
  to: Time;
}

export function seriesStats(series: Series, end: Time): SeriesStats | null {
  const points = series.points;
  if (!points.length) {
    return null;
  }
  if (series.mean !== undefined && series.peak !== undefined) {
    // the server's figures, over the whole run: [first point, end]
    const [from, to] = [points[0][0], Math.max(end, points[points.length - 1][0])];
    const utilisation = series.capacity ? series.mean / series.capacity : null;
    return { peak: series.peak, mean: series.mean, utilisation, from, to };
  }
  const from = points[0][0];
  const last = points[points.length - 1];
  const to = last[1] === 0 ? last[0] : Math.max(end, last[0]);
  let area = 0;
  let peak = 0;
  for (let i = 0; i < points.length; i++) {
    const [t, value] = points[i];
    const next = i + 1 < points.length ? points[i + 1][0] : to;
    area += value * Math.max(0, Math.min(next, to) - t);
    peak = Math.max(peak, value);
  }
  const span = to - from;
  const mean = span > 0 ? area / span : peak;
  const utilisation = series.capacity ? mean / series.capacity : null;
  return { peak, mean, utilisation, from, to };
}

export function renderTimeline(timeline: Timeline, now: number = Date.now() / 1000): HTMLElement {
  const series = timeline.series.filter(s => s.points.length);
  const start = timeline.start ?? Math.min(...series.map(s => s.points[0][0]), now);
  const end = Math.max(timeline.end ?? now, start + 0.001);
  const root = h('div', { class: 'flyte-nb-timeline' });
  if (!series.length) {
    root.append(h('div', { class: 'flyte-nb-muted' }, 'No action has run yet.'));
    return root;
  }
  for (const s of series) {
    root.append(isRateLane(s) ? rateRow(s, start, end) : seriesRow(s, start, end));
  }
  root.append(axis(start, end));
  return root;
}

function seriesRow(series: Series, start: Time, end: Time): HTMLElement {
  const stats = seriesStats(series, end);
  const peak = stats?.peak ?? 0;
  const top = Math.max(series.capacity ?? 0, peak, 1);
  const svg = stepChart({
    points: series.points,
    start,
    end,
    top,
    limit: series.capacity,
    title: `${series.name}: up to ${peak} running` + (series.capacity ? ` of ${series.capacity}` : '')
  });

  const used = stats?.utilisation;
  const figures = series.capacity
    ? `${peak}/${series.capacity} peak · ${used === null || used === undefined ? '–' : Math.round(used * 100)}% used`
    : `peak ${peak} · mean ${(stats?.mean ?? 0).toFixed(1)}`;
  return h(
    'div',
    {
      class: 'flyte-nb-timeline-row',
      'data-series': series.name,
      'data-capacity': series.capacity ?? '',
      'data-peak': peak,
      'data-utilisation': used === null || used === undefined ? '' : used.toFixed(3)
    },
    h(
      'div',
      {
        class: 'flyte-nb-timeline-label',
        title: series.capacity
          ? `mean ${(stats?.mean ?? 0).toFixed(2)} running of ${series.capacity} slots over` +
            ` (${formatDuration((stats?.to ?? 0) - (stats?.from ?? 0))})`
          : 'no concurrency limit'
      },
      h('span', { class: 'flyte-nb-timeline-name' }, series.name === 'run' ? 'whole run' : series.name),
      h('span', { class: 'flyte-nb-timeline-figures' }, figures)
    ),
    h('div', { class: 'flyte-nb-timeline-plot' }, svg)
  );
}

/** Time ticks at a round step giving about six labels. */
function axis(start: Time, end: Time): HTMLElement {
  const span = end - start;
  const steps = [0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400];
  const step = steps.find(s => span / s <= 7) ?? steps[steps.length - 1];
  const ticks = h('div', { class: 'flyte-nb-timeline-ticks' });
  for (let t = 0; t <= span + 1e-9; t += step) {
    const tick = h('span', { class: 'flyte-nb-timeline-tick' }, tickLabel(t, step));
    tick.style.left = `${(100 * t) / span}%`;
    ticks.append(tick);
  }
  return h('div', { class: 'flyte-nb-timeline-axis' }, h('div', { class: 'flyte-nb-timeline-label' }, ''), ticks);
}

function tickLabel(t: number, step: number): string {
  if (step < 1) {
    return `${t.toFixed(1)} s`;
  }
  if (t < 60 || step < 60) {
    return t < 60 ? `${Math.round(t)} s` : `${Math.floor(t / 60)}:${String(Math.round(t % 60)).padStart(2, '0')}`;
  }
  return t < 3600 ? `${Math.round(t / 60)} min` : `${(t / 3600).toFixed(t % 3600 ? 1 : 0)} h`;
}
