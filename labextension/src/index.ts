/**
 * flyte-nb: the Flyte runs side panel, run views, abort commands and the `?flyte-nb-run=` route.
 */
import { ILayoutRestorer, IRouter, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette, MainAreaWidget, WidgetTracker } from '@jupyterlab/apputils';
import { INotebookTracker } from '@jupyterlab/notebook';

import { FlyteApi } from './api';
import { addCommands, CommandIDs, RUN_ROUTE } from './commands';
import { RunView } from './runView';
import { RunsPanel } from './runsPanel';

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'flyte-nb:plugin',
  description: 'Flyte runs: a side panel of runs, run views with slot timelines, abort commands.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ICommandPalette, ILayoutRestorer, IRouter],
  activate: (
    app: JupyterFrontEnd,
    notebooks: INotebookTracker,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null,
    router: IRouter | null
  ) => {
    const api = new FlyteApi(app.serviceManager.serverSettings);
    const panel = new RunsPanel({
      api,
      commands: app.commands,
      currentNotebook: () => notebooks.currentWidget?.context.path ?? null,
      notebookChanged: notebooks.currentChanged
    });
    app.shell.add(panel, 'left', { rank: 650 });

    const views = new WidgetTracker<MainAreaWidget<RunView>>({ namespace: 'flyte-nb-run' });
    addCommands({ app, api, panel, views, notebooks });

    if (palette) {
      for (const command of [CommandIDs.openRuns, CommandIDs.abortCellRun]) {
        palette.addItem({ command, category: 'Flyte' });
      }
    }
    if (restorer) {
      restorer.add(panel, 'flyte-nb-runs');
      void restorer.restore(views, {
        command: CommandIDs.openRun,
        args: widget => ({ name: widget.content.runName }),
        name: widget => widget.content.runName
      });
    }
    if (router) {
      router.register({ command: CommandIDs.openRun, pattern: RUN_ROUTE, rank: 100 });
    }
  }
};

export default plugin;
