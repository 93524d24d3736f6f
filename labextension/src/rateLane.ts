/**
 * A rate's lane of the run timeline: actions started per second against the rate's limit.
 *
 * The server counts the recorded starts of the actions that take units of the rate (a tag's, a
 * map's, an environment's) in buckets of a second or more; the lane draws those per-second
 * figures as a `stepChart` with the limit as a dashed line, like the slot lanes beside it, and
 * says how close to its limit the rate was used at its busiest and on average.
 */
import { Series, Time } from './api';
import { h } from './dom';
import { stepChart } from './stepChart';

export function isRateLane(series: Series): boolean {
  return series.kind === 'rate';
}

export function rateRow(series: Series, start: Time, end: Time): HTMLElement {
  const limit = series.capacity;
  const peak = series.peak ?? Math.max(0, ...series.points.map(p => p[1]));
  const top = Math.max(limit ?? 0, peak, 1) * 1.1;
  const svg = stepChart({
    points: series.points,
    start,
    end,
    top,
    limit,
    title: `${series.name}: up to ${perSecond(peak)} started` + (limit ? ` (limit ${perSecond(limit)})` : ''),
    extraClass: 'flyte-nb-rate-chart'
  });
  const used = limit ? peak / limit : null;
  const figures = limit
    ? `${perSecond(peak)} of ${perSecond(limit)} at most · ${Math.round((used ?? 0) * 100)}%`
    : `${perSecond(peak)} at most`;
  return h(
    'div',
    {
      class: 'flyte-nb-timeline-row flyte-nb-rate-lane',
      'data-series': series.name,
      'data-kind': 'rate',
      'data-capacity': limit ?? '',
      'data-peak': peak,
      'data-started': series.started ?? '',
      'data-utilisation': used === null ? '' : used.toFixed(3)
    },
    h(
      'div',
      {
        class: 'flyte-nb-timeline-label',
        title: `${series.started ?? '?'} started, ${perSecond(series.mean ?? 0)} on average` +
          (limit ? `; the limit is ${perSecond(limit)}` : '')
      },
      h('span', { class: 'flyte-nb-timeline-name' }, series.name),
      h('span', { class: 'flyte-nb-timeline-figures' }, figures)
    ),
    h('div', { class: 'flyte-nb-timeline-plot' }, svg)
  );
}

function perSecond(value: number): string {
  return `${value >= 10 ? Math.round(value) : Number(value.toFixed(value >= 1 ? 1 : 3))}/s`;
}
