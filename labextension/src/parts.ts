/** Small pieces shared by the panel and the run view: phase badges and progress bars. */
import { h, setAttr, setText } from './dom';
import { Progress } from './format';

export function badge(phase: string): HTMLSpanElement {
  return h('span', { class: 'flyte-nb-badge', 'data-phase': phase }, phase.replace('_', ' '));
}

export function updateBadge(element: HTMLElement, phase: string): void {
  setAttr(element, 'data-phase', phase);
  setText(element, phase.replace('_', ' '));
}

const SEGMENTS = ['ok', 'failed', 'cancelled', 'running'] as const;

/** A bar with stacked segments: succeeded (or cached), failed (or timed out), cancelled, running. */
export function progressBar(): HTMLDivElement {
  return h(
    'div',
    { class: 'flyte-nb-progress', role: 'progressbar', 'aria-valuemin': 0 },
    ...SEGMENTS.map(kind => h('span', { class: `flyte-nb-progress-seg flyte-nb-seg-${kind}` }))
  );
}

export function updateProgressBar(bar: HTMLElement, p: Progress): void {
  const total = Math.max(p.total, 1);
  SEGMENTS.forEach((kind, i) => {
    const segment = bar.children[i] as HTMLElement;
    const width = `${((100 * p[kind]) / total).toFixed(2)}%`;
    if (segment.style.width !== width) {
      segment.style.width = width;
    }
  });
  setAttr(bar, 'aria-valuemax', String(p.total));
  setAttr(bar, 'aria-valuenow', String(p.done));
}
