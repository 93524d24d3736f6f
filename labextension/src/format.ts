/** How times, durations and counts read in the panel and the run views. */
import { Counts, DONE_PHASES, RunSummary, Time } from './api';

export function formatDuration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !isFinite(seconds)) {
    return '–';
  }
  if (seconds < 10) {
    return `${seconds.toFixed(1)} s`;
  }
  if (seconds < 60) {
    return `${Math.round(seconds)} s`;
  }
  const total = Math.round(seconds);
  const [h, m, s] = [Math.floor(total / 3600), Math.floor((total % 3600) / 60), total % 60];
  return h ? `${h} h ${pad(m)} min` : `${m} min ${pad(s)} s`;
}

/** A clock time for today, a date and time for older moments. */
export function formatTime(time: Time | null | undefined, now: number = Date.now() / 1000): string {
  if (time === null || time === undefined) {
    return '–';
  }
  const date = new Date(time * 1000);
  const clock = `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
  if (new Date(now * 1000).toDateString() === date.toDateString()) {
    return clock;
  }
  return `${date.toLocaleDateString(undefined, { month: 'short', day: 'numeric' })} ${clock.slice(0, 5)}`;
}

export function fullTime(time: Time | null | undefined): string {
  return time === null || time === undefined ? '' : new Date(time * 1000).toLocaleString();
}

/** Seconds a run has taken so far (live runs count up to `now`). */
export function elapsed(run: RunSummary, now: number = Date.now() / 1000): number | null {
  if (run.duration !== null && run.duration !== undefined && !run.live) {
    return run.duration;
  }
  const start = run.started_at ?? run.created_at;
  if (start === null) {
    return null;
  }
  return Math.max(0, (run.ended_at ?? now) - start);
}

export interface Progress {
  done: number;
  /** succeeded or cached */
  ok: number;
  /** failed or timed out */
  failed: number;
  cancelled: number;
  running: number;
  /** queued or waiting for slots */
  waiting: number;
  total: number;
}

/** Sum counts per phase into what a progress bar shows. `total` defaults to the sum. */
export function progress(counts: Counts, total?: number | null): Progress {
  const n = (phase: keyof Counts): number => counts[phase] ?? 0;
  const ok = n('succeeded') + n('cached');
  const failed = n('failed') + n('timed_out');
  const cancelled = n('cancelled');
  const running = n('running');
  const waiting = n('queued') + n('waiting');
  let done = 0;
  let sum = 0;
  for (const [phase, count] of Object.entries(counts)) {
    sum += count ?? 0;
    if (DONE_PHASES.has(phase)) {
      done += count ?? 0;
    }
  }
  return { done, ok, failed, cancelled, running, waiting, total: Math.max(total ?? sum, sum) };
}

/** "196/200 done · 4 failed · 3 running" */
export function progressText(p: Progress): string {
  const parts = [`${p.done}/${p.total} done`];
  if (p.failed) {
    parts.push(`${p.failed} failed`);
  }
  if (p.cancelled) {
    parts.push(`${p.cancelled} cancelled`);
  }
  if (p.running) {
    parts.push(`${p.running} running`);
  }
  if (p.waiting) {
    parts.push(`${p.waiting} waiting`);
  }
  return parts.join(' · ');
}

function pad(n: number): string {
  return String(n).padStart(2, '0');
}
