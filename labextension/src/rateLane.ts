/**
 * A rate's lane of the run timeline: actions started per second against the rate's limit.
 *
 * The server counts the recorded starts of the actions that take units of the rate (a tag's, a
 * map's, an environment's) in buckets of a second or more; the lane draws those per-second
 * figures as steps with the limit as a dashed line, like the slot lanes beside it, and says how
 * close to its limit the rate was used at its busiest and on average.
 */
import { Series, Time } from './api';
import { h, svgElement } from './dom';

const WIDTH = 1000;
const HEIGHT = 40;

export function isRateLane(series: Series): boolean {
  return series.kind === 'rate';
}

export function rateRow(series: Series, start: Time, end: Time): HTMLElement {
  const limit = series.capacity;
  const peak = series.peak ?? Math.max(0, ...series.points.map(p => p[1]));
  const top = Math.max(limit ?? 0, peak, 1) * 1.1;
  const x = (t: Time) => ((Math.min(Math.max(t, start), end) - start) / (end - start)) * WIDTH;
  const y = (v: number) => HEIGHT - 1 - ((HEIGHT - 4) * v) / top;

  let d = `M${x(series.points[0][0]).toFixed(1)},${y(0).toFixed(1)}`;
  for (const [t, value] of series.points) {
    d += ` H${x(t).toFixed(1)} V${y(value).toFixed(1)}`;
  }
  d += ` H${x(end).toFixed(1)}`;
  const svg = svgElement('svg', {});
  svg.setAttribute('class', 'flyte-nb-timeline-chart flyte-nb-rate-chart');
  svg.setAttribute('viewBox', `0 0 ${WIDTH} ${HEIGHT}`);
  svg.setAttribute('preserveAspectRatio', 'none');
  svg.setAttribute('role', 'img');
  svg.append(
    svgElement('title', {}, `${series.name}: up to ${perSecond(peak)} started` + (limit ? ` (limit ${perSecond(limit)})` : '')),
    svgElement('path', { class: 'flyte-nb-timeline-area', d: `${d} V${y(0).toFixed(1)} Z` }),
    svgElement('path', { class: 'flyte-nb-timeline-line', d, 'vector-effect': 'non-scaling-stroke' })
  );
  if (limit) {
    const cy = y(limit).toFixed(1);
    svg.append(
      svgElement('line', {
        class: 'flyte-nb-timeline-capacity',
        x1: '0',
        x2: String(WIDTH),
        y1: cy,
        y2: cy,
        'vector-effect': 'non-scaling-stroke'
      })
    );
  }
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
