/**
 * The extension's commands: show the Runs panel, open a run, abort a run, abort the current
 * cell's run. `flyte-nb:open-run` is also the router's command for `lab?flyte-nb-run=<name>`.
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { MainAreaWidget, Notification, WidgetTracker } from '@jupyterlab/apputils';
import { INotebookTracker } from '@jupyterlab/notebook';
import { ReadonlyPartialJSONObject } from '@lumino/coreutils';

import { ApiError, FlyteApi } from './api';
import { flyteIcon } from './icon';
import { RunView } from './runView';
import { RunsPanel } from './runsPanel';

export const CommandIDs = {
  openRuns: 'flyte-nb:open-runs',
  openRun: 'flyte-nb:open-run',
  abortRun: 'flyte-nb:abort-run',
  abortCellRun: 'flyte-nb:abort-cell-run'
} as const;

/** `lab?flyte-nb-run=<name>`: what `Run.url` leads to. */
export const RUN_ROUTE = /[?&]flyte-nb-run=([^&#]+)/;

export interface ICommandContext {
  app: JupyterFrontEnd;
  api: FlyteApi;
  panel: RunsPanel;
  views: WidgetTracker<MainAreaWidget<RunView>>;
  notebooks: INotebookTracker;
}

export function addCommands(context: ICommandContext): void {
  const { app, api, panel, notebooks } = context;
  const { commands, shell } = app;

  commands.addCommand(CommandIDs.openRuns, {
    label: 'Show Flyte Runs',
    caption: 'Show the Flyte runs panel',
    icon: args => (args.isPalette ? undefined : flyteIcon),
    execute: async () => {
      await app.restored; // before that, restoring the layout would hide the panel again
      shell.activateById(panel.id);
    }
  });

  commands.addCommand(CommandIDs.openRun, {
    label: args => (args.name ? `Open Flyte Run ${args.name}` : 'Open Flyte Run'),
    caption: "Show a run's groups, slot occupancy and actions",
    execute: args => {
      const name = runName(args);
      if (!name) {
        return;
      }
      if (typeof args.request === 'string') {
        // From the router while Lab starts: open once the layout is restored, without holding up the
        // other routes (the layout itself is restored by one of them).
        void app.restored.then(() => openRun(context, name));
        return;
      }
      return openRun(context, name);
    }
  });

  commands.addCommand(CommandIDs.abortRun, {
    label: args => (args.name ? `Abort Flyte Run ${args.name}` : 'Abort Flyte Run'),
    caption: 'Ask the kernel that runs it to abort the run',
    execute: async args => {
      const name = runName(args);
      if (!name) {
        return;
      }
      try {
        const answer = await api.abortRun(name);
        Notification.info(`Aborting run ${name}`, { autoClose: 3000 });
        void panel.refresh().catch(() => undefined);
        return answer;
      } catch (error) {
        const message = error instanceof ApiError ? error.message : String(error);
        if (error instanceof ApiError && error.status === 409) {
          Notification.info(message, { autoClose: 4000 });
        } else {
          Notification.error(`Cannot abort ${name}: ${message}`, { autoClose: 6000 });
        }
        return null;
      }
    }
  });

  commands.addCommand(CommandIDs.abortCellRun, {
    label: 'Abort the Run Started by the Current Cell',
    caption: "Abort the live flyte_nb runs that the active cell started in this notebook's kernel",
    isEnabled: () => !!notebooks.currentWidget,
    execute: async () => {
      const notebook = notebooks.currentWidget;
      const kernel = notebook?.sessionContext.session?.kernel?.id;
      const cell = notebook?.content.activeCell?.model.id;
      if (!kernel || !cell) {
        Notification.warning('Select a cell of a notebook with a running kernel first.', { autoClose: 4000 });
        return [];
      }
      let runs;
      try {
        runs = (await api.listRuns({ kernel, cell, status: 'live', limit: 500 })).data?.runs ?? [];
      } catch (error) {
        Notification.error(`Cannot look up the cell's runs: ${error}`, { autoClose: 6000 });
        return [];
      }
      if (!runs.length) {
        Notification.info('No live run was started by this cell.', { autoClose: 3000 });
        return [];
      }
      const aborted: string[] = [];
      for (const run of runs) {
        try {
          await api.abortRun(run.name, 'aborted from its cell');
          aborted.push(run.name);
        } catch (error) {
          if (!(error instanceof ApiError && error.status === 409)) {
            Notification.error(`Cannot abort ${run.name}: ${error}`, { autoClose: 6000 });
          }
        }
      }
      if (aborted.length) {
        Notification.info(`Aborting ${aborted.join(', ')}`, { autoClose: 3000 });
      }
      void panel.refresh().catch(() => undefined);
      return aborted;
    }
  });

}

async function openRun(context: ICommandContext, name: string): Promise<MainAreaWidget<RunView>> {
  const { app, api, views } = context;
  const existing = views.find(widget => widget.content.runName === name);
  if (existing) {
    app.shell.activateById(existing.id);
    return existing;
  }
  const content = new RunView({ api, commands: app.commands, name });
  const widget = new MainAreaWidget({ content });
  widget.id = `flyte-nb-run-${name.replace(/\s/g, '_')}`;
  widget.title.label = name;
  widget.title.icon = flyteIcon;
  widget.title.closable = true;
  await views.add(widget);
  app.shell.add(widget, 'main');
  app.shell.activateById(widget.id);
  return widget;
}

/** `{name}`, or the router's location whose query holds `flyte-nb-run=<name>`. */
function runName(args: ReadonlyPartialJSONObject): string | null {
  if (typeof args.name === 'string' && args.name) {
    return args.name;
  }
  const match = typeof args.search === 'string' ? args.search.match(RUN_ROUTE) : null;
  return match ? decodeURIComponent(match[1].replace(/\+/g, ' ')) : null;
}
