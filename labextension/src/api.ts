/**
 * The REST client for the flyte_nb server extension (`<baseUrl>flyte-nb/api/`).
 *
 * Types mirror the JSON the server sends, field for field. Every request goes through
 * `ServerConnection.makeRequest`, which adds the token and the XSRF header.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

/** Times are epoch seconds. */
export type Time = number;

export type RunPhase = 'queued' | 'running' | 'succeeded' | 'failed' | 'aborted';

export type ActionPhase =
  | 'queued'
  | 'waiting'
  | 'running'
  | 'succeeded'
  | 'failed'
  | 'timed_out'
  | 'cancelled'
  | 'cached';

export const RUN_PHASES: readonly RunPhase[] = ['queued', 'running', 'succeeded', 'failed', 'aborted'];

export const ACTION_PHASES: readonly ActionPhase[] = [
  'queued',
  'waiting',
  'running',
  'succeeded',
  'failed',
  'timed_out',
  'cancelled',
  'cached'
];

/** Action phases after which an action never changes again. */
export const DONE_PHASES: ReadonlySet<string> = new Set(['succeeded', 'failed', 'timed_out', 'cancelled', 'cached']);

export interface ErrorInfo {
  type: string;
  message: string;
  traceback?: string | null;
}

export type Counts = Partial<Record<ActionPhase, number>>;

export interface RunSummary {
  name: string;
  driver: string;
  phase: RunPhase;
  created_at: Time | null;
  started_at: Time | null;
  ended_at: Time | null;
  duration: number | null;
  actions: number;
  counts: Counts;
  error: ErrorInfo | null;
  abort_reason: string | null;
  notebook: string | null;
  kernel: string | null;
  cell: string | null;
  live: boolean;
  retry_of: string | null;
}

export interface RunsPage {
  runs: RunSummary[];
  next: string | null;
  total: number;
}

export interface GroupInfo {
  name: string;
  total: number | null;
  counts: Counts;
  capacity: number | null;
  /** The action whose body made the group (its actions' parent), its task, and its actions' depth. */
  parent?: number | null;
  parent_task?: string | null;
  depth?: number;
}

/** One step chart: `points` are `[time, running]` changes, each value holding until the next. */
export interface Series {
  name: string;
  /** "run", "group", "tag" (a throttled tag's pool, named "tag:<tag>") or "rate" (starts per second). */
  kind?: string;
  /** Slots; for a rate, its limit in units per second. */
  capacity: number | null;
  /** A rate's lane: how many actions started. */
  started?: number;
  /** Highest number running at once, and the time-weighted mean over [start, end]. */
  peak?: number;
  mean?: number;
  points: [Time, number][];
}

export interface Timeline {
  start: Time | null;
  end: Time | null;
  series: Series[];
}

export interface ErrorRow {
  number: number;
  name: string;
  task: string;
  group: string | null;
  type: string;
  message: string;
}

export interface RunDetail extends RunSummary {
  groups: GroupInfo[];
  pools: { name: string; capacity: number | null }[];
  timeline: Timeline;
  errors: ErrorRow[];
}

export interface ActionRow {
  number: number;
  name: string;
  task: string;
  group: string | null;
  index: number | null;
  phase: ActionPhase;
  attempts: number;
  queued_at: Time | null;
  started_at: Time | null;
  ended_at: Time | null;
  duration: number | null;
  error: ErrorInfo | null;
  parent: number | null;
  /** Place in the action tree: 0 for the driver, 1 for its children … */
  depth: number | null;
  /** While it waits, for what: "waiting for rate llm". */
  reason?: string | null;
  /** Each wait of its lifecycle, in order (none if it started at once). */
  waited?: Wait[];
}

export interface Wait {
  pool: string;
  reason: string;
  at: Time;
  /** How long it lasted; null while it goes on. */
  seconds: number | null;
}

export interface ActionsPage {
  total: number;
  actions: ActionRow[];
  /** Keyset cursors of the neighbouring pages (`after` / `before`); null at either end. */
  next?: number | null;
  prev?: number | null;
}

export interface Attempt {
  number: number;
  phase: string;
  started_at: Time | null;
  ended_at: Time | null;
  error: ErrorInfo | null;
}

export interface Preview {
  preview: string | null;
  size: number | null;
}

export interface ActionDetail extends ActionRow {
  attempt_history: Attempt[];
  logs: string;
  /** Why a value was not recorded, if it was not. */
  note?: string | null;
  output: Preview;
  inputs: Preview;
  /** The path (under the base URL) of the action's flyte.report page, if it has one. */
  report?: string | null;
}

export interface RunsQuery {
  status?: 'live' | RunPhase;
  notebook?: string;
  kernel?: string;
  cell?: string;
  limit?: number;
  before?: string;
}

export interface ActionsQuery {
  offset?: number;
  /** Keyset paging: the actions after this number (or before it), an indexed read at any depth. */
  after?: number;
  before?: number;
  limit?: number;
  phase?: ActionPhase;
  group?: string;
}

/** A conditional GET's answer: `data` is null when the server said 304 (nothing changed). */
export interface Fetched<T> {
  data: T | null;
  etag: string | null;
}

/** A non-2xx answer; `status` is the HTTP status (404 unknown run, 409 already finished). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export class FlyteApi {
  constructor(readonly settings: ServerConnection.ISettings = ServerConnection.makeSettings()) {}

  /** Runs, newest first. Pass the last ETag to get `data: null` when nothing changed. */
  listRuns(query: RunsQuery, etag?: string | null): Promise<Fetched<RunsPage>> {
    return this.get<RunsPage>('runs' + queryString({ ...query }), etag);
  }

  getRun(name: string, etag?: string | null): Promise<Fetched<RunDetail>> {
    return this.get<RunDetail>(`runs/${encodeURIComponent(name)}`, etag);
  }

  listActions(name: string, query: ActionsQuery, etag?: string | null): Promise<Fetched<ActionsPage>> {
    return this.get<ActionsPage>(`runs/${encodeURIComponent(name)}/actions` + queryString({ ...query }), etag);
  }

  async getAction(name: string, action: number): Promise<ActionDetail> {
    return (await this.get<ActionDetail>(`runs/${encodeURIComponent(name)}/actions/${action}`)).data as ActionDetail;
  }

  /** Ask the kernel that owns the run to abort it (it does so within about half a second). */
  async abortRun(name: string, reason?: string): Promise<{ name: string; phase: RunPhase; requested: boolean }> {
    const body = JSON.stringify(reason ? { reason } : {});
    const response = await this.fetch(`runs/${encodeURIComponent(name)}/abort`, { method: 'POST', body });
    return response.json();
  }

  private async get<T>(path: string, etag?: string | null): Promise<Fetched<T>> {
    const headers: Record<string, string> = etag ? { 'If-None-Match': etag } : {};
    const response = await this.fetch(path, { method: 'GET', headers });
    if (response.status === 304) {
      return { data: null, etag: etag ?? null };
    }
    return { data: (await response.json()) as T, etag: response.headers.get('ETag') };
  }

  private async fetch(path: string, init: RequestInit): Promise<Response> {
    const url = URLExt.join(this.settings.baseUrl, 'flyte-nb/api', path);
    let response: Response;
    try {
      response = await ServerConnection.makeRequest(url, init, this.settings);
    } catch (error) {
      throw new ApiError(0, `flyte-nb server unreachable: ${String(error)}`);
    }
    if (response.status === 304 || response.ok) {
      return response;
    }
    let message = response.statusText || `HTTP ${response.status}`;
    try {
      const body = await response.json();
      message = body.message || message;
    } catch {
      // not JSON: keep the status text
    }
    throw new ApiError(response.status, message);
  }
}

function queryString(params: Record<string, string | number | undefined>): string {
  const entries = Object.entries(params).filter(([, v]) => v !== undefined && v !== '');
  if (!entries.length) {
    return '';
  }
  return '?' + entries.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`).join('&');
}
