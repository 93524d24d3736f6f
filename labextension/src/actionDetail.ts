/** One action in full: error and traceback, attempts, what it printed, its inputs and output. */
import { ActionDetail, ErrorInfo, Preview } from './api';
import { Child, h } from './dom';
import { formatDuration, formatTime } from './format';
import { badge } from './parts';
import { reportSection } from './report';
import { waitsSection } from './waitReason';

export function renderActionDetail(action: ActionDetail): HTMLElement {
  const span = (a: number | null, b: number | null) => (a !== null && b !== null ? b - a : null);
  return h(
    'div',
    { class: 'flyte-nb-action-detail', 'data-action': action.number, 'data-phase': action.phase },
    h(
      'div',
      { class: 'flyte-nb-action-detail-head' },
      h('strong', {}, `${action.name} · ${action.task}`),
      badge(action.phase)
    ),
    h(
      'dl',
      { class: 'flyte-nb-facts' },
      ...fact('group', action.group ? `${action.group}${action.index !== null ? ` [${action.index}]` : ''}` : null),
      ...fact('queued', formatTime(action.queued_at)),
      ...fact('started', formatTime(action.started_at)),
      ...fact('ended', formatTime(action.ended_at)),
      ...fact('duration', formatDuration(action.duration)),
      ...fact('attempts', String(action.attempts)),
      ...fact('parent', action.parent !== null ? `a${action.parent}` : null)
    ),
    action.error && section('Error', errorBlock(action.error)),
    waitsSection(action),
    action.attempt_history.length > 1 &&
      section(
        'Attempts',
        h(
          'table',
          { class: 'flyte-nb-attempts' },
          ...action.attempt_history.map(attempt =>
            h(
              'tr',
              { 'data-phase': attempt.phase },
              h('td', {}, `#${attempt.number}`),
              h('td', {}, badge(attempt.phase)),
              h('td', {}, formatTime(attempt.started_at)),
              h('td', {}, formatDuration(span(attempt.started_at, attempt.ended_at))),
              h('td', {}, attempt.error ? `${attempt.error.type}: ${attempt.error.message}` : '')
            )
          )
        )
      ),
    reportSection(action.report),
    section('Output', preview(action.output, 'no output recorded')),
    section('Inputs', preview(action.inputs, 'no inputs')),
    section(
      'Logs',
      action.logs ? h('pre', { class: 'flyte-nb-logs' }, action.logs) : h('div', { class: 'flyte-nb-muted' }, 'nothing printed')
    ),
    action.note ? h('div', { class: 'flyte-nb-muted' }, action.note) : null
  );
}

export function errorBlock(error: ErrorInfo): HTMLElement {
  return h(
    'div',
    { class: 'flyte-nb-error-block' },
    h('div', { class: 'flyte-nb-error-line' }, h('strong', {}, error.type), `: ${error.message}`),
    error.traceback
      ? h('details', {}, h('summary', {}, 'Traceback'), h('pre', { class: 'flyte-nb-traceback-text' }, error.traceback))
      : null
  );
}

function preview(value: Preview, none: string): HTMLElement {
  if (value.preview === null) {
    return h('div', { class: 'flyte-nb-muted' }, none);
  }
  return h(
    'div',
    {},
    h('pre', { class: 'flyte-nb-preview' }, value.preview),
    value.size !== null ? h('div', { class: 'flyte-nb-muted' }, `${value.size.toLocaleString()} bytes`) : null
  );
}

function section(title: string, body: Child): HTMLElement {
  return h('section', { class: 'flyte-nb-action-section' }, h('h4', {}, title), body);
}

function fact(label: string, value: string | null): HTMLElement[] {
  return value === null ? [] : [h('dt', {}, label), h('dd', {}, value)];
}
