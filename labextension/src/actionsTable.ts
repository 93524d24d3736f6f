/**
 * A run's actions, a page at a time, filtered by phase and group; a click shows one in full.
 */
import { ACTION_PHASES, ActionRow, FlyteApi } from './api';
import { h, replaceChildren, setText } from './dom';
import { formatDuration } from './format';
import { renderActionDetail } from './actionDetail';
import { phaseCell } from './waitReason';

const PAGE = 100;

export class ActionsTable {
  readonly node: HTMLElement;

  constructor(
    private readonly api: FlyteApi,
    private readonly run: string
  ) {
    this.node = h(
      'section',
      { class: 'flyte-nb-actions' },
      h(
        'div',
        { class: 'flyte-nb-actions-toolbar' },
        h('h3', {}, 'Actions'),
        this.phase,
        this.group,
        h('span', { class: 'flyte-nb-spacer' }),
        this.range,
        this.prev,
        this.next
      ),
      h(
        'div',
        { class: 'flyte-nb-actions-body' },
        h(
          'div',
          { class: 'flyte-nb-actions-scroll' },
          h(
            'table',
            { class: 'flyte-nb-actions-table' },
            h(
              'thead',
              {},
              h('tr', {}, ...['#', 'task', 'parent', 'depth', 'group', 'phase', 'duration', 'attempts', 'error'].map(c => h('th', {}, c)))
            ),
            this.body
          ),
          this.empty
        ),
        this.detail
      )
    );
  }

  /** Offer the run's groups in the group filter. */
  setGroups(groups: string[]): void {
    const current = [...this.group.options].slice(1).map(o => o.value);
    if (current.join('\n') === groups.join('\n')) {
      return;
    }
    const selected = this.group.value;
    replaceChildren(this.group, h('option', { value: '' }, 'all groups'), ...groups.map(g => h('option', { value: g }, g)));
    this.group.value = groups.includes(selected) ? selected : '';
    this.group.hidden = groups.length === 0;
  }

  /** Fetch the page shown (a 304 when nothing changed). */
  async refresh(): Promise<void> {
    const generation = this.generation;
    const query = {
      ...this.cursor,
      limit: PAGE,
      phase: (this.phase.value || undefined) as ActionRow['phase'] | undefined,
      group: this.group.value || undefined
    };
    const fetched = await this.api.listActions(this.run, query, this.etag);
    if (generation !== this.generation) {
      return;
    }
    this.etag = fetched.etag;
    if (!fetched.data) {
      return;
    }
    const { total, actions, next, prev } = fetched.data;
    this.total = total;
    this.after = next ?? null;
    this.before = prev ?? null;
    replaceChildren(this.body, ...actions.map(action => this.row(action)));
    setText(this.range, total ? `${this.offset + 1}–${this.offset + actions.length} of ${total}` : '');
    this.prev.disabled = this.offset === 0 || this.before === null;
    this.next.disabled = this.offset + PAGE >= total || this.after === null;
    this.empty.hidden = actions.length > 0;
    const selected = actions.find(a => a.number === this.selected);
    if (selected && selected.phase !== this.selectedPhase) {
      void this.select(selected.number); // it moved on: show its new state
    }
  }

  private row(action: ActionRow): HTMLTableRowElement {
    const error = action.error ? `${action.error.type}: ${action.error.message}` : '';
    return h(
      'tr',
      {
        class: 'flyte-nb-action-row',
        'data-action': action.number,
        'data-phase': action.phase,
        'data-parent': action.parent ?? '',
        'data-depth': action.depth ?? '',
        'aria-selected': action.number === this.selected ? 'true' : 'false',
        tabindex: 0,
        onclick: () => void this.select(action.number),
        onkeydown: (event: Event) => {
          if ((event as KeyboardEvent).key === 'Enter') {
            void this.select(action.number);
          }
        }
      },
      h('td', { class: 'flyte-nb-num' }, action.name),
      h('td', { class: 'flyte-nb-tree-task', style: `padding-left: ${(action.depth ?? 0) * 12 + 4}px` }, action.task),
      h('td', { class: 'flyte-nb-num flyte-nb-action-parent' }, action.parent === null ? '' : `a${action.parent}`),
      h('td', { class: 'flyte-nb-num flyte-nb-action-depth' }, action.depth === null ? '' : String(action.depth)),
      h('td', {}, action.group ? `${action.group}${action.index !== null ? ` [${action.index}]` : ''}` : ''),
      phaseCell(action),
      h('td', { class: 'flyte-nb-num' }, formatDuration(action.duration)),
      h('td', { class: 'flyte-nb-num' }, String(action.attempts)),
      h('td', { class: 'flyte-nb-action-error', title: error }, error)
    );
  }

  /** Show one action in the detail pane. */
  async select(number: number): Promise<void> {
    this.selected = number;
    for (const row of this.body.querySelectorAll('.flyte-nb-action-row')) {
      row.setAttribute('aria-selected', String(row.getAttribute('data-action') === String(number)));
    }
    try {
      const action = await this.api.getAction(this.run, number);
      if (this.selected === number) {
        this.selectedPhase = action.phase;
        replaceChildren(this.detail, renderActionDetail(action));
      }
    } catch (error) {
      replaceChildren(this.detail, h('div', { class: 'flyte-nb-runs-message' }, `Cannot load a${number}: ${error}`));
    }
  }

  private filter(): void {
    this.generation++;
    this.offset = 0;
    this.cursor = {};
    this.etag = null;
    void this.refresh();
  }

  /** The next or previous page by keyset (the server reads it by index, whatever the depth). */
  private page(delta: number): void {
    const cursor = delta > 0 ? this.after : this.before;
    if (cursor === null) {
      return;
    }
    this.generation++;
    this.cursor = delta > 0 ? { after: cursor } : { before: cursor };
    this.offset = Math.max(0, Math.min(this.offset + delta * PAGE, Math.max(0, this.total - 1)));
    this.etag = null;
    void this.refresh();
  }

  private etag: string | null = null;
  private generation = 0;
  private offset = 0; // of the page shown, for its "1–100 of N"
  private cursor: { after?: number; before?: number } = {};
  private after: number | null = null;
  private before: number | null = null;
  private total = 0;
  private selected: number | null = null;
  private selectedPhase: string | null = null;

  private readonly phase = h(
    'select',
    { class: 'flyte-nb-phase-filter jp-mod-styled', title: 'Show actions in this phase', onchange: () => this.filter() },
    h('option', { value: '' }, 'all phases'),
    ...ACTION_PHASES.map(p => h('option', { value: p }, p.replace('_', ' ')))
  );
  private readonly group = h(
    'select',
    { class: 'flyte-nb-group-filter jp-mod-styled', title: 'Show actions of this group', onchange: () => this.filter() },
    h('option', { value: '' }, 'all groups')
  );
  private readonly range = h('span', { class: 'flyte-nb-range' });
  private readonly prev = h('button', { class: 'flyte-nb-prev', onclick: () => this.page(-1) }, '‹ Prev');
  private readonly next = h('button', { class: 'flyte-nb-next', onclick: () => this.page(1) }, 'Next ›');
  private readonly body = h('tbody', {});
  private readonly empty = h('div', { class: 'flyte-nb-muted flyte-nb-actions-empty' }, 'No actions match.');
  private readonly detail = h(
    'aside',
    { class: 'flyte-nb-action-pane' },
    h('div', { class: 'flyte-nb-muted' }, 'Click an action to see its error, attempts, logs and output.')
  );
}
