/**
 * Runs one `inhouse` CLI command to completion (not the language server: that is serverProcess.ts), keeping
 * the last part of its output and stopping it, with everything it started, when the user cancels. No
 * `vscode` import, so the unit tests run it against real processes.
 */
import { spawn } from 'node:child_process';

export interface CliResult {
  /** Exit code; `null` when a signal stopped it or it never started. */
  readonly exitCode: number | null;
  readonly signal: string | null;
  /** Spawn error code (ENOENT, EACCES) when it never started. */
  readonly errorCode?: string;
  readonly cancelled: boolean;
  /** The last `TAIL_CHARS` characters of each stream. */
  readonly stdout: string;
  readonly stderr: string;
}

export interface CliRun {
  readonly result: Promise<CliResult>;
  /** Stops the process and its children (SIGTERM to the process group, SIGKILL after `graceMs`). */
  cancel(): void;
}

export const TAIL_CHARS = 8000;

export interface CliOptions {
  readonly cwd: string;
  readonly env?: NodeJS.ProcessEnv;
  /** Every chunk of output as it arrives (for the log). */
  readonly onOutput?: (stream: 'stdout' | 'stderr', text: string) => void;
  readonly graceMs?: number;
}

export function runCli(command: string, args: readonly string[], options: CliOptions): CliRun {
  const posix = process.platform !== 'win32';
  // its own process group on POSIX, so a cancel also stops what it started (pytest, simulators)
  const child = spawn(command, [...args], {
    cwd: options.cwd,
    env: options.env ?? process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: posix,
  });
  let stdout = '';
  let stderr = '';
  let cancelled = false;
  let killTimer: NodeJS.Timeout | undefined;
  child.stdout.on('data', (d: Buffer) => {
    const text = d.toString('utf8');
    stdout = (stdout + text).slice(-TAIL_CHARS);
    options.onOutput?.('stdout', text);
  });
  child.stderr.on('data', (d: Buffer) => {
    const text = d.toString('utf8');
    stderr = (stderr + text).slice(-TAIL_CHARS);
    options.onOutput?.('stderr', text);
  });
  const signalTree = (signal: NodeJS.Signals) => {
    if (child.pid === undefined) return;
    try {
      if (posix) process.kill(-child.pid, signal);
      else child.kill(signal);
    } catch {
      // already gone
    }
  };
  const result = new Promise<CliResult>((resolve) => {
    child.once('error', (err: NodeJS.ErrnoException) => {
      if (killTimer) clearTimeout(killTimer);
      resolve({ exitCode: null, signal: null, errorCode: err.code ?? 'ERROR', cancelled, stdout, stderr: stderr || err.message });
    });
    child.once('close', (code, signal) => {
      if (killTimer) clearTimeout(killTimer);
      // children left in the group (a cancelled run) get the same end as their parent
      if (cancelled) signalTree('SIGKILL');
      resolve({ exitCode: code, signal, cancelled, stdout, stderr });
    });
  });
  return {
    result,
    cancel(): void {
      if (cancelled) return;
      cancelled = true;
      signalTree('SIGTERM');
      killTimer = setTimeout(() => signalTree('SIGKILL'), options.graceMs ?? 3000);
      killTimer.unref();
    },
  };
}
