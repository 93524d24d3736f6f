/**
 * One run in the main area: header (phase, times, error, Abort, Open notebook), per-group
 * progress, the slot-occupancy timeline, the first errors and the actions table.
 *
 * A live run is polled while its tab is visible; a finished run is fetched once.
 */
import { CommandRegistry } from '@lumino/commands';
import { Message } from '@lumino/messaging';
import { Poll } from '@lumino/polling';
import { Widget } from '@lumino/widgets';

import { ApiError, FlyteApi, GroupInfo, RunDetail } from './api';
import { errorBlock } from './actionDetail';
import { ActionsTable } from './actionsTable';
import { h, replaceChildren, setAttr, setText } from './dom';
import { elapsed, formatDuration, formatTime, fullTime, progress, progressText } from './format';
import { badge, progressBar, updateBadge, updateProgressBar } from './parts';
import { POLL_INTERVAL } from './runsPanel';
import { renderTimeline } from './timeline';

export interface IRunViewOptions {
  api: FlyteApi;
  commands: CommandRegistry;
  name: string;
}

export class RunView extends Widget {
  readonly runName: string;

  constructor(private readonly options: IRunViewOptions) {
    super();
    this.runName = options.name;
    this.addClass('flyte-nb-run-detail');
    this.node.dataset.run = options.name;
    this.node.dataset.phase = 'loading';
    this.actions = new ActionsTable(options.api, options.name);
    this.node.append(
      this.header,
      this.message,
      h('section', { class: 'flyte-nb-section-groups' }, h('h3', {}, 'Groups'), this.groups),
      h(
        'section',
        { class: 'flyte-nb-section-timeline' },
        h('h3', {}, 'Slot occupancy', h('span', { class: 'flyte-nb-legend' }, this.legend())),
        this.timeline
      ),
      this.errors,
      this.actions.node
    );
    this.poll = new Poll({
      auto: false,
      factory: () => this.refresh(),
      frequency: { interval: POLL_INTERVAL, backoff: true, max: 30_000 },
      name: `flyte-nb:run:${options.name}`,
      standby: 'when-hidden'
    });
  }

  get detail(): RunDetail | null {
    return this.detail_;
  }

  /** Fetch the run (and the actions page shown); stop polling once it has ended. */
  async refresh(): Promise<void> {
    try {
      const fetched = await this.options.api.getRun(this.runName, this.etag);
      this.etag = fetched.etag;
      if (fetched.data) {
        this.render(fetched.data);
      } else if (this.detail_) {
        this.renderClock(this.detail_);
      }
      await this.actions.refresh();
      setText(this.message, '');
    } catch (error) {
      const missing = error instanceof ApiError && error.status === 404;
      setText(this.message, missing ? `There is no run named ${this.runName}.` : `Cannot load the run: ${error}`);
      if (missing) {
        this.node.dataset.phase = 'missing';
        void this.poll.stop();
        return;
      }
      throw error; // the poll backs off
    }
    if (this.detail_ && !this.detail_.live) {
      void this.poll.stop();
    }
  }

  override dispose(): void {
    if (!this.isDisposed) {
      this.poll.dispose();
      super.dispose();
    }
  }

  protected override onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    this.resume();
  }

  protected override onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    if (this.isVisible) {
      this.resume();
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

  /** Poll while the run is live (or not loaded yet); a finished run needs no more requests. */
  private resume(): void {
    if (!this.detail_ || this.detail_.live) {
      void this.poll.start();
    }
  }

  private render(run: RunDetail): void {
    this.detail_ = run;
    this.node.dataset.phase = run.phase;
    this.node.dataset.live = String(run.live);
    this.title.label = run.name;
    this.title.caption = `Flyte run ${run.name}: ${run.phase}`;
    updateBadge(this.badge, run.phase);
    setText(this.driver, run.driver);
    this.abort.hidden = !run.live;
    this.openNotebook.hidden = !run.notebook;
    setAttr(this.openNotebook, 'title', run.notebook ? `Open ${run.notebook}` : '');
    this.renderClock(run);
    const overall = progress(run.counts, expectedActions(run));
    updateProgressBar(this.bar, overall);
    setText(this.counts, run.actions ? progressText(overall) : 'no actions yet');
    // An aborted run's error only repeats its abort reason.
    const aborted = run.phase === 'aborted' && !!run.abort_reason;
    replaceChildren(
      this.problem,
      run.error && !aborted ? errorBlock(run.error) : null,
      aborted ? h('div', { class: 'flyte-nb-abort-reason' }, capitalize(run.abort_reason as string)) : null
    );
    replaceChildren(
      this.groups,
      ...run.groups.map(group => this.group(group)),
      run.groups.length ? null : h('div', { class: 'flyte-nb-muted' }, 'No map or group in this run.')
    );
    replaceChildren(this.timeline, renderTimeline(run.timeline));
    this.renderErrors(run);
    this.actions.setGroups(run.groups.map(g => g.name));
  }

  /** Times move on even when nothing else changed. */
  private renderClock(run: RunDetail): void {
    const now = Date.now() / 1000;
    const parts = [`started ${formatTime(run.started_at ?? run.created_at, now)}`];
    if (run.ended_at) {
      parts.push(`ended ${formatTime(run.ended_at, now)}`);
    }
    parts.push(`${run.live ? 'running for' : 'took'} ${formatDuration(elapsed(run, now))}`);
    if (run.retry_of) {
      parts.push(`retry of ${run.retry_of}`);
    }
    setText(this.times, parts.join(' · '));
    setAttr(this.times, 'title', `created ${fullTime(run.created_at)}`);
  }

  private group(group: GroupInfo): HTMLElement {
    const p = progress(group.counts, group.total);
    const bar = progressBar();
    updateProgressBar(bar, p);
    return h(
      'div',
      {
        class: 'flyte-nb-group',
        'data-group': group.name,
        'data-done': p.done,
        'data-total': p.total,
        'data-parent': group.parent ?? '',
        style: `margin-left: ${Math.max(0, (group.depth ?? 1) - 1) * 16}px`
      },
      h(
        'div',
        { class: 'flyte-nb-group-head' },
        h('span', { class: 'flyte-nb-group-name' }, group.name),
        (group.depth ?? 1) > 1 && group.parent !== null && group.parent !== undefined
          ? h('span', { class: 'flyte-nb-group-parent' }, `in a${group.parent} ${group.parent_task ?? ''}`)
          : null,
        h('span', { class: 'flyte-nb-group-text' }, progressText(p)),
        h('span', { class: 'flyte-nb-capacity' }, group.capacity ? `${group.capacity} slots` : 'no limit')
      ),
      bar
    );
  }

  private renderErrors(run: RunDetail): void {
    this.errors.hidden = run.errors.length === 0;
    const failed = (run.counts.failed ?? 0) + (run.counts.timed_out ?? 0);
    replaceChildren(
      this.errors,
      h('h3', {}, failed > run.errors.length ? `Errors (first ${run.errors.length} of ${failed})` : 'Errors'),
      h(
        'ul',
        { class: 'flyte-nb-error-list' },
        ...run.errors.map(error =>
          h(
            'li',
            { class: 'flyte-nb-error-item', 'data-action': error.number, onclick: () => void this.actions.select(error.number) },
            h('span', { class: 'flyte-nb-num' }, error.name),
            ` ${error.task}${error.group ? ` (${error.group})` : ''} · `,
            h('strong', {}, error.type),
            `: ${error.message}`
          )
        )
      )
    );
  }

  private legend(): HTMLElement {
    return h(
      'span',
      {},
      h('span', { class: 'flyte-nb-legend-running' }),
      'running',
      h('span', { class: 'flyte-nb-legend-capacity' }),
      'capacity'
    );
  }

  private async abortRun(): Promise<void> {
    await this.options.commands.execute('flyte-nb:abort-run', { name: this.runName });
    void this.poll.refresh();
  }

  private readonly poll: Poll;
  private readonly actions: ActionsTable;
  private etag: string | null = null;
  private detail_: RunDetail | null = null;

  private readonly badge = badge('queued');
  private readonly driver = h('span', { class: 'flyte-nb-detail-driver', title: 'driver task' });
  private readonly times = h('div', { class: 'flyte-nb-detail-times' });
  private readonly bar = progressBar();
  private readonly counts = h('span', { class: 'flyte-nb-detail-counts' });
  private readonly problem = h('div', { class: 'flyte-nb-detail-problem' });
  private readonly abort = h(
    'button',
    { class: 'flyte-nb-abort', title: 'Abort this run', hidden: true, onclick: () => void this.abortRun() },
    'Abort'
  );
  private readonly openNotebook = h(
    'button',
    {
      class: 'flyte-nb-open-notebook',
      hidden: true,
      onclick: () => {
        const path = this.detail_?.notebook;
        if (path) {
          void this.options.commands.execute('docmanager:open', { path });
        }
      }
    },
    'Open notebook'
  );
  private readonly header = h(
    'header',
    { class: 'flyte-nb-detail-head' },
    h(
      'div',
      { class: 'flyte-nb-detail-title' },
      h('h2', {}, this.options.name),
      this.badge,
      this.driver,
      h('span', { class: 'flyte-nb-spacer' }),
      this.openNotebook,
      this.abort
    ),
    this.times,
    h('div', { class: 'flyte-nb-detail-progress' }, this.bar, this.counts),
    this.problem
  );
  private readonly message = h('div', { class: 'flyte-nb-runs-message', role: 'alert' });
  private readonly groups = h('div', { class: 'flyte-nb-groups' });
  private readonly timeline = h('div', { class: 'flyte-nb-timeline-box' });
  private readonly errors = h('section', { class: 'flyte-nb-errors', hidden: true });
}

function capitalize(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/** Actions so far plus those a map will still start (maps start their actions lazily). */
function expectedActions(run: RunDetail): number {
  let pending = 0;
  for (const group of run.groups) {
    const started = Object.values(group.counts).reduce((sum, n) => sum + (n ?? 0), 0);
    pending += Math.max(0, (group.total ?? 0) - started);
  }
  return run.actions + (run.live ? pending : 0);
}
