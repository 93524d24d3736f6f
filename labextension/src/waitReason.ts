/**
 * Why an action waited: its current reason in the actions table ("waiting for rate llm"), and
 * every wait of its lifecycle with its length in the action's detail. The server reads these
 * from the waits the writer recorded (one each time a pool made the action wait).
 */
import { ActionRow } from './api';
import { h } from './dom';
import { formatDuration } from './format';
import { badge } from './parts';

/** The phase cell: the phase, and while the action waits, for what. */
export function phaseCell(action: ActionRow): HTMLElement {
  const reason = action.reason ?? null;
  return h(
    'td',
    { class: 'flyte-nb-phase-cell', title: reason ?? action.phase },
    badge(action.phase),
    reason ? h('span', { class: 'flyte-nb-wait-reason', 'data-reason': reason }, ` ${reason}`) : null
  );
}

/** The detail's "Waited" section: each wait in order, with how long it lasted (none: it started at once). */
export function waitsSection(action: ActionRow): HTMLElement | null {
  const waited = action.waited ?? [];
  if (!waited.length) {
    return null;
  }
  return h(
    'section',
    { class: 'flyte-nb-action-section flyte-nb-waits' },
    h('h4', {}, 'Waited'),
    h(
      'table',
      { class: 'flyte-nb-waits-table' },
      ...waited.map(wait =>
        h(
          'tr',
          { class: 'flyte-nb-wait', 'data-pool': wait.pool },
          h('td', {}, wait.reason),
          h('td', { class: 'flyte-nb-num' }, wait.seconds === null ? 'still waiting' : formatDuration(wait.seconds))
        )
      )
    )
  );
}
