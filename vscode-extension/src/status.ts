/**
 * The status bar's state machine: server lifecycle events, the server's `$/inhouse/status` notifications,
 * in-flight completion requests and the user's on/off toggle go in; `render` gives the status bar text.
 * Pure (no `vscode` import); extension.ts owns the StatusBarItem and feeds events through `reduce`.
 */

/** What the server reported last (`$/inhouse/status` {state}), plus the client's own lifecycle states. */
export type ServerState = 'starting' | 'ready' | 'generating' | 'unreachable' | 'disabled' | 'failed' | 'stopped';

/** What the status bar shows. */
export type Display = 'starting' | 'ready' | 'generating' | 'unreachable' | 'disabled' | 'failed' | 'stopped';

export interface StatusModel {
  readonly enabled: boolean;
  readonly server: ServerState;
  readonly model: string | null;
  readonly adapter: string | null;
  /** Completion requests sent and not yet answered. */
  readonly inflight: number;
  /** Extra text for the tooltip (the start failure, an unreachable backend's URL). */
  readonly detail: string | null;
  /** The completion profile in use, as the server describes it (null until it says). */
  readonly profile?: string | null;
}

/** The notification's params, as sent by the server. */
export interface StatusNotification {
  state?: unknown;
  model?: unknown;
  adapter?: unknown;
  detail?: unknown;
  message?: unknown;
  profile?: unknown;
}

export type StatusEvent =
  | { kind: 'starting' }
  | { kind: 'started' }
  | { kind: 'failed'; detail: string }
  | { kind: 'stopped' }
  | { kind: 'server'; params: StatusNotification }
  | { kind: 'setEnabled'; enabled: boolean }
  | { kind: 'requestStarted' }
  | { kind: 'requestFinished' };

export const SERVER_STATES: readonly string[] = ['starting', 'ready', 'generating', 'unreachable', 'disabled'];

export function initialStatus(enabled: boolean): StatusModel {
  return { enabled, server: 'starting', model: null, adapter: null, inflight: 0, detail: null };
}

function optString(v: unknown): string | null | undefined {
  if (v === undefined) return undefined; // not sent: keep what we had
  if (v === null || v === '') return null;
  return typeof v === 'string' ? v : String(v);
}

/** The next model after `event`. Unknown server states change nothing but the model/adapter names. */
export function reduce(m: StatusModel, event: StatusEvent): StatusModel {
  switch (event.kind) {
    case 'starting':
      return { ...m, server: 'starting', inflight: 0, detail: null };
    case 'started':
      // the server speaks: ready until it reports otherwise (a notification may already have arrived)
      return m.server === 'starting' ? { ...m, server: 'ready' } : m;
    case 'failed':
      return { ...m, server: 'failed', inflight: 0, detail: event.detail };
    case 'stopped':
      return { ...m, server: 'stopped', inflight: 0 };
    case 'setEnabled':
      return { ...m, enabled: event.enabled };
    case 'requestStarted':
      return { ...m, inflight: m.inflight + 1 };
    case 'requestFinished':
      return { ...m, inflight: Math.max(0, m.inflight - 1) };
    case 'server': {
      if (m.server === 'failed' || m.server === 'stopped') return m;
      const p = event.params ?? {};
      const model = optString(p.model);
      const adapter = optString(p.adapter);
      const detail = optString(p.detail ?? p.message);
      const state = typeof p.state === 'string' && SERVER_STATES.includes(p.state) ? (p.state as ServerState) : m.server;
      return {
        ...m,
        server: state,
        model: model === undefined ? m.model : model,
        adapter: adapter === undefined ? m.adapter : adapter,
        profile: optString(p.profile) === undefined ? (m.profile ?? null) : optString(p.profile) || null,
        detail: detail === undefined ? (state === m.server ? m.detail : null) : detail,
      };
    }
  }
}

/** One state for the status bar: the user's toggle wins, then lifecycle, then the server/in-flight state. */
export function display(m: StatusModel): Display {
  if (!m.enabled) return 'disabled';
  if (m.server === 'failed' || m.server === 'stopped' || m.server === 'starting') return m.server;
  if (m.server === 'unreachable' || m.server === 'disabled') return m.server;
  // The client knows exactly when it waits for an answer; a server "generating" with nothing in flight is a
  // request the editor cancelled (the server may not report ready after a cancellation).
  if (m.inflight > 0) return 'generating';
  return 'ready';
}

export interface Rendered {
  readonly display: Display;
  readonly text: string;
  readonly tooltip: string;
  /** 'warning' | 'error' background, or null for the normal one. */
  readonly background: 'warning' | 'error' | null;
}

const ICONS: Record<Display, string> = {
  starting: '$(loading~spin)',
  ready: '$(check)',
  generating: '$(sync~spin)',
  unreachable: '$(warning)',
  disabled: '$(circle-slash)',
  failed: '$(error)',
  stopped: '$(debug-stop)',
};

const LABELS: Record<Display, string> = {
  starting: 'starting',
  ready: 'ready',
  generating: 'generating',
  unreachable: 'backend unreachable',
  disabled: 'disabled',
  failed: 'server not running',
  stopped: 'server stopped',
};

/** Status bar text, e.g. `$(check) inhouse: ready · tiny · team-a`, and its tooltip. */
export function render(m: StatusModel): Rendered {
  const d = display(m);
  const names = [m.model, m.adapter].filter((x): x is string => !!x);
  const suffix = names.length > 0 && d !== 'failed' && d !== 'stopped' ? ` · ${names.join(' · ')}` : '';
  const text = `${ICONS[d]} inhouse: ${LABELS[d]}${suffix}`;
  const lines = [`inhouse: ${LABELS[d]}`];
  if (m.model) lines.push(`model: ${m.model}`);
  lines.push(`adapter: ${m.adapter ?? '(base model)'}`);
  if (m.profile) lines.push(`profile: ${m.profile}`);
  if (m.detail) lines.push(m.detail);
  lines.push(m.enabled ? 'Click to turn completions off.' : 'Click to turn completions on.');
  const background = d === 'failed' ? 'error' : d === 'unreachable' ? 'warning' : null;
  return { display: d, text, tooltip: lines.join('\n'), background };
}
