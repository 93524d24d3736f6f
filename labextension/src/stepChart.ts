/**
 * The step chart of a timeline lane (slot occupancy or a rate's starts per second): each value
 * holds until the next point, the last one until `end`, filled beneath, with the limit as a
 * dashed line. An inline SVG stretched to the row's width (viewBox with
 * preserveAspectRatio="none", strokes that do not scale), so the lanes line up with the axis.
 */
import { Time } from './api';
import { svgElement } from './dom';

const WIDTH = 1000;
const HEIGHT = 40;

export interface StepChart {
  points: [Time, number][];
  start: Time;
  end: Time;
  /** The value drawn at the top of the chart. */
  top: number;
  /** The dashed line, if any. */
  limit?: number | null;
  title: string;
  /** Classes besides `flyte-nb-timeline-chart`. */
  extraClass?: string;
}

export function stepChart(chart: StepChart): SVGElement {
  const { points, start, end, top } = chart;
  const x = (t: Time) => ((Math.min(Math.max(t, start), end) - start) / (end - start)) * WIDTH;
  const y = (v: number) => HEIGHT - 1 - ((HEIGHT - 4) * v) / top;
  let d = `M${x(points[0][0]).toFixed(1)},${y(0).toFixed(1)}`;
  for (const [t, value] of points) {
    d += ` H${x(t).toFixed(1)} V${y(value).toFixed(1)}`;
  }
  d += ` H${x(end).toFixed(1)}`;

  const svg = svgElement('svg', {});
  svg.setAttribute('class', ['flyte-nb-timeline-chart', chart.extraClass].filter(Boolean).join(' '));
  svg.setAttribute('viewBox', `0 0 ${WIDTH} ${HEIGHT}`);
  svg.setAttribute('preserveAspectRatio', 'none');
  svg.setAttribute('role', 'img');
  svg.append(
    svgElement('title', {}, chart.title),
    svgElement('path', { class: 'flyte-nb-timeline-area', d: `${d} V${y(0).toFixed(1)} Z` }),
    svgElement('path', { class: 'flyte-nb-timeline-line', d, 'vector-effect': 'non-scaling-stroke' })
  );
  if (chart.limit) {
    const cy = y(chart.limit).toFixed(1);
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
  return svg;
}
