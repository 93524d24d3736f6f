/**
 * The "Flyte runs" side panel: runs newest first, with status and notebook filters and paging.
 *
 * It polls only while it is visible (every 1.5 s, backing off on errors), sending the last ETag so
 * that an unchanged list costs the server a 304 and the panel no DOM work.
 */
import { Poll } from '@lumino/polling';
import { ISignal } from '@lumino/signaling';
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';
import { CommandRegistry } from '@lumino/commands';
import { refreshIcon } from '@jupyterlab/ui-components';

import { ApiError, FlyteApi, RunSummary, RunsQuery } from './api';
import { h, setAttr, setText } from './dom';
import { elapsed, formatDuration, formatTime, fullTime, progress, progressText } from './format';
import { flyteIcon } from './icon';
import { badge, progressBar, updateBadge, updateProgressBar } from './parts';

export const POLL_INTERVAL = 1500;
const PAGE = 50;
const MAX_HEAD = 500;

type StatusFilter = '' | NonNullable<RunsQuery['status']>;

const STATUS_OPTIONS: [StatusFilter, string][] = [
  ['', 'All'],
  ['live', 'Live'],
  ['succeeded', 'Succeeded'],
  ['failed', 'Failed'],
  ['aborted', 'Aborted']
];

export interface IRunsPanelOptions {
  api: FlyteApi;
  commands: CommandRegistry;
  /** The path (relative to the server root) of the notebook the user is working in, if any. */
  currentNotebook: () => string | null;
  /** Emits when the current notebook changes. */
  notebookChanged: ISignal<unknown, unknown>;
}

export class RunsPanel extends Widget {
  constructor(private readonly options: IRunsPanelOptions) {
    super();
    this.id = 'flyte-nb-runs';
    this.addClass('flyte-nb-runs');
    this.title.icon = flyteIcon;
    this.title.caption = 'Flyte runs';
    this.node.append(this.head, this.filters, this.message, this.list, this.empty, this.more);
    this.poll = new Poll({
      auto: false,
      factory: () => this.refresh(),
      frequency: { interval: POLL_INTERVAL, backoff: true, max: 30_000 },
      name: 'flyte-nb:runs',
      standby: 'when-hidden'
    });
    options.notebookChanged.connect(this.onNotebookChanged, this);
  }

  /** Fetch now (also what each poll tick does). */
  async refresh(): Promise<void> {
    const query = this.query();
    if (!query) {
      this.render([], 0, null);
      return;
    }
    const generation = this.generation;
    let fetched;
    try {
      fetched = await this.options.api.listRuns({ ...query, limit: this.headLimit }, this.etag);
    } catch (error) {
      if (generation === this.generation) {
        this.fail(error);
      }
      throw error; // the poll backs off
    }
    if (generation !== this.generation) {
      return; // the filters changed while this request was out
    }
    this.etag = fetched.etag;
    setText(this.message, '');
    if (fetched.data) {
      this.headRuns = fetched.data.runs;
      this.headNext = fetched.data.next;
      this.total = fetched.data.total;
      if (!this.older.length) {
        this.olderNext = fetched.data.next;
      }
    }
    this.render([...this.headRuns, ...this.older], this.total, this.older.length ? this.olderNext : this.headNext);
  }

  override dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this.poll.dispose();
    super.dispose();
  }

  protected override onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    void this.poll.start();
  }

  protected override onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    if (this.isVisible) {
      void this.poll.start();
    }
  }

  protected override onAfterHide(msg: Message): void {
    super.onAfterHide(msg);
    void this.poll.stop();
  }

  protected override onBeforeDetach(msg: Message): void {
    void this.poll.stop();
    super.onBeforeDetach(msg);
  }

  private query(): RunsQuery | null {
    const query: RunsQuery = {};
    if (this.status.value) {
      query.status = this.status.value as RunsQuery['status'];
    }
    if (this.notebookOnly.checked) {
      const notebook = this.options.currentNotebook();
      if (!notebook) {
        return null;
      }
      query.notebook = notebook;
    }
    return query;
  }

  /** Filters changed: forget pages and ETag, fetch at once. */
  private reset(): void {
    this.generation++;
    this.etag = null;
    this.headLimit = PAGE;
    this.headRuns = [];
    this.older = [];
    this.olderNext = null;
    this.list.scrollTop = 0;
    if (this.isVisible) {
      void this.poll.refresh(); // (a hidden panel fetches when shown: refreshing would restart the poll)
    }
  }

  private onNotebookChanged(): void {
    if (this.notebookOnly.checked) {
      this.reset();
    }
  }

  /** "More": grow the polled head up to 500 runs, then page further back with the cursor. */
  private async loadMore(): Promise<void> {
    if (this.headLimit < MAX_HEAD) {
      this.headLimit = Math.min(MAX_HEAD, this.headLimit + PAGE);
      this.etag = null;
      await this.poll.refresh();
      return;
    }
    const query = this.query();
    if (!query || !this.olderNext) {
      return;
    }
    const generation = this.generation;
    try {
      const page = (await this.options.api.listRuns({ ...query, limit: PAGE, before: this.olderNext })).data;
      if (page && generation === this.generation) {
        this.older.push(...page.runs);
        this.olderNext = page.next;
        this.render([...this.headRuns, ...this.older], this.total, this.olderNext);
      }
    } catch (error) {
      this.fail(error);
    }
  }

  private render(runs: RunSummary[], total: number, next: string | null): void {
    const now = Date.now() / 1000;
    const seen = new Set<string>();
    let previous: Element | null = null;
    for (const run of runs) {
      if (seen.has(run.name)) {
        continue;
      }
      seen.add(run.name);
      let row = this.rows.get(run.name);
      if (!row) {
        row = new RunRow(run.name, this.options.commands);
        this.rows.set(run.name, row);
      }
      row.update(run, now);
      const expected: Element | null = previous ? previous.nextElementSibling : this.list.firstElementChild;
      if (expected !== row.node) {
        this.list.insertBefore(row.node, expected);
      }
      previous = row.node;
    }
    for (const [name, row] of this.rows) {
      if (!seen.has(name)) {
        row.node.remove();
        this.rows.delete(name);
      }
    }
    const filtered = this.status.value !== '' || this.notebookOnly.checked;
    setText(this.count, total === 1 ? '1 run' : `${total} runs`);
    this.more.hidden = !next;
    this.empty.hidden = seen.size > 0;
    setText(
      this.empty,
      this.notebookOnly.checked && !this.options.currentNotebook()
        ? 'Open a notebook to see its runs.'
        : filtered
          ? 'No runs match these filters.'
          : 'No runs yet. Start one with flyte_nb.run(...) in a notebook.'
    );
  }

  private fail(error: unknown): void {
    const status = error instanceof ApiError ? error.status : 0;
    const text =
      status === 404
        ? 'The flyte_nb server extension is not enabled on this Jupyter server.'
        : `Cannot load runs: ${error instanceof Error ? error.message : String(error)}`;
    setText(this.message, text);
  }

  private readonly poll: Poll;
  private etag: string | null = null;
  private generation = 0;
  private headLimit = PAGE;
  private headRuns: RunSummary[] = [];
  private headNext: string | null = null;
  private older: RunSummary[] = [];
  private olderNext: string | null = null;
  private total = 0;
  private readonly rows = new Map<string, RunRow>();

  private readonly count = h('span', { class: 'flyte-nb-runs-count' });
  private readonly head = h(
    'div',
    { class: 'flyte-nb-runs-head' },
    h('h2', { class: 'flyte-nb-runs-title' }, 'Flyte runs'),
    this.count,
    refreshButton(() => void this.poll.refresh())
  );
  private readonly status = h(
    'select',
    { class: 'flyte-nb-status-filter jp-mod-styled', title: 'Show runs in this state', onchange: () => this.reset() },
    ...STATUS_OPTIONS.map(([value, label]) => h('option', { value }, label))
  );
  private readonly notebookOnly = h('input', {
    type: 'checkbox',
    class: 'flyte-nb-notebook-filter',
    onchange: () => this.reset()
  });
  private readonly filters = h(
    'div',
    { class: 'flyte-nb-runs-filters' },
    this.status,
    h('label', { title: 'Only runs started from the notebook you are working in' }, this.notebookOnly, 'This notebook only')
  );
  private readonly message = h('div', { class: 'flyte-nb-runs-message', role: 'alert' });
  private readonly list = h('ul', { class: 'flyte-nb-run-list' });
  private readonly empty = h('div', { class: 'flyte-nb-runs-empty' });
  private readonly more = h('button', { class: 'flyte-nb-more', onclick: () => void this.loadMore() }, 'More');
}

/** One run in the list, updated in place on each poll. */
class RunRow {
  readonly node: HTMLLIElement;

  constructor(
    readonly name: string,
    private readonly commands: CommandRegistry
  ) {
    const open = () => void commands.execute('flyte-nb:open-run', { name });
    this.node = h(
      'li',
      {
        class: 'flyte-nb-run-row',
        'data-run': name,
        tabindex: 0,
        title: `Open run ${name}`,
        onclick: open,
        onkeydown: (event: Event) => {
          if ((event as KeyboardEvent).key === 'Enter') {
            open();
          }
        }
      },
      h('div', { class: 'flyte-nb-run-line' }, h('span', { class: 'flyte-nb-run-name' }, name), this.badge, this.abort),
      h('div', { class: 'flyte-nb-run-line flyte-nb-run-sub' }, this.driver, this.times),
      h('div', { class: 'flyte-nb-run-line' }, this.bar, this.counts),
      this.error
    );
  }

  update(run: RunSummary, now: number): void {
    setAttr(this.node, 'data-phase', run.phase);
    setAttr(this.node, 'data-live', String(run.live));
    updateBadge(this.badge, run.phase);
    setText(this.driver, run.driver);
    setText(this.times, `${formatTime(run.started_at ?? run.created_at, now)} · ${formatDuration(elapsed(run, now))}`);
    setAttr(this.times, 'title', `started ${fullTime(run.started_at ?? run.created_at)}`);
    const p = progress(run.counts, run.actions);
    updateProgressBar(this.bar, p);
    setText(this.counts, p.total ? progressText(p) : 'no actions yet');
    this.abort.hidden = !run.live;
    const problem =
      run.phase === 'aborted' && run.abort_reason
        ? run.abort_reason
        : run.error
          ? `${shortType(run.error.type)}: ${run.error.message}`
          : '';
    setText(this.error, problem);
    this.error.hidden = !problem;
  }

  private readonly badge = badge('queued');
  private readonly driver = h('span', { class: 'flyte-nb-run-driver', title: 'driver task' });
  private readonly times = h('span', { class: 'flyte-nb-run-times' });
  private readonly bar = progressBar();
  private readonly counts = h('span', { class: 'flyte-nb-run-counts' });
  private readonly error = h('div', { class: 'flyte-nb-run-problem' });
  private readonly abort = h(
    'button',
    {
      class: 'flyte-nb-abort',
      title: 'Abort this run',
      onclick: (event: Event) => {
        event.stopPropagation();
        void this.commands.execute('flyte-nb:abort-run', { name: this.name });
      }
    },
    'Abort'
  );
}

/** `builtins.ValueError` reads as `ValueError` where space is short. */
function shortType(type: string): string {
  return type.startsWith('builtins.') ? type.slice('builtins.'.length) : type;
}

function refreshButton(onclick: () => void): HTMLButtonElement {
  const button = h('button', { class: 'flyte-nb-refresh', title: 'Refresh now', onclick });
  refreshIcon.element({ container: button, height: '16px', width: '16px' });
  return button;
}
