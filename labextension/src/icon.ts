/** The Flyte runs icon: one task fanning out into three, as a map does. Themed via jp-icon3. */
import { LabIcon } from '@jupyterlab/ui-components';

const svg = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" width="16" height="16">
  <g class="jp-icon3" fill="#616161">
    <circle cx="5" cy="12" r="3"/>
    <circle cx="19" cy="5" r="2.5"/>
    <circle cx="19" cy="12" r="2.5"/>
    <circle cx="19" cy="19" r="2.5"/>
  </g>
  <g class="jp-icon3" stroke="#616161" stroke-width="1.6" stroke-linecap="round">
    <path fill="none" d="M8 12 C12 12 12 5 16.5 5"/>
    <path fill="none" d="M8 12 H16.5"/>
    <path fill="none" d="M8 12 C12 12 12 19 16.5 19"/>
  </g>
</svg>`;

export const flyteIcon = new LabIcon({ name: 'flyte-nb:runs', svgstr: svg });
