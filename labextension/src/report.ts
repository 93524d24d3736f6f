/**
 * An action's flyte.report in the run view. The page is HTML a task body wrote, so it is never put
 * into Lab's DOM: it loads in an iframe with `sandbox="allow-scripts"` (an opaque origin: no access
 * to Lab, its cookies or its API), from a route that also serves it with a CSP sandbox.
 */
import { PageConfig, URLExt } from '@jupyterlab/coreutils';
import { h } from './dom';

export function reportSection(path: string | null | undefined): HTMLElement | null {
  if (!path) {
    return null;
  }
  const src = URLExt.join(PageConfig.getBaseUrl(), path);
  return h(
    'section',
    { class: 'flyte-nb-action-section flyte-nb-report-section' },
    h('h4', {}, 'Report'),
    h('iframe', {
      class: 'flyte-nb-report-frame',
      sandbox: 'allow-scripts',
      referrerpolicy: 'no-referrer',
      src,
      title: 'report',
      style: 'width:100%;height:420px;border:1px solid var(--jp-border-color2);background:#fff'
    }),
    h('a', { href: src, target: '_blank', rel: 'noopener noreferrer', class: 'flyte-nb-muted' }, 'open in a new tab')
  );
}
