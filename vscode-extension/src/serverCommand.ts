/**
 * Which process to start as the language server, and the one message the user sees when it cannot start.
 * `inhouse.server.command` wins; otherwise the first workspace folder with `.venv/bin/inhouse`, otherwise
 * `inhouse` from PATH. Pure: the file-system probes are passed in, so the unit tests run without VS Code.
 */
import * as path from 'node:path';

export type CommandSource = 'setting' | 'workspace-venv' | 'path' | 'missing';

export interface ServerCommand {
  readonly command: string;
  readonly args: readonly string[];
  readonly source: CommandSource;
  /** The command line as the user would type it (for messages and the log). */
  readonly display: string;
}

export interface Probes {
  /** True when `file` exists and is executable. */
  isExecutable(file: string): boolean;
  /** `PATH` entries, in order. */
  readonly pathDirs: readonly string[];
  /** Executable names to try per directory (Windows adds .exe, .cmd). */
  readonly exeSuffixes?: readonly string[];
}

/** Splits a command line into argv: whitespace separates, single/double quotes group, backslash escapes. */
export function splitCommandLine(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let inToken = false;
  let quote: '"' | "'" | null = null;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i];
    if (quote) {
      if (ch === quote) quote = null;
      else if (ch === '\\' && quote === '"' && i + 1 < line.length && '"\\'.includes(line[i + 1])) cur += line[++i];
      else cur += ch;
    } else if (ch === '"' || ch === "'") {
      quote = ch;
      inToken = true;
    } else if (ch === '\\' && i + 1 < line.length) {
      cur += line[++i];
      inToken = true;
    } else if (/\s/.test(ch)) {
      if (inToken) out.push(cur);
      cur = '';
      inToken = false;
    } else {
      cur += ch;
      inToken = true;
    }
  }
  if (quote) throw new Error(`unbalanced ${quote} quote in "${line}"`);
  if (inToken) out.push(cur);
  return out;
}

function quoteArg(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

export function displayCommand(command: string, args: readonly string[]): string {
  return [command, ...args].map(quoteArg).join(' ');
}

/** Finds `name` on PATH (names with a slash are returned as they are when executable). */
export function findExecutable(name: string, probes: Probes): string | undefined {
  if (name.includes('/') || name.includes(path.sep)) return probes.isExecutable(name) ? name : undefined;
  for (const dir of probes.pathDirs) {
    if (!dir) continue;
    for (const suffix of probes.exeSuffixes ?? ['']) {
      const candidate = path.join(dir, name + suffix);
      if (probes.isExecutable(candidate)) return candidate;
    }
  }
  return undefined;
}

/**
 * Resolves the server command. `setting` is `inhouse.server.command` (a command line; empty = automatic),
 * `workspaceFolders` are absolute paths. Relative commands in the setting resolve against the first folder.
 */
export function resolveServerCommand(setting: string, workspaceFolders: readonly string[], probes: Probes): ServerCommand {
  const trimmed = setting.trim();
  if (trimmed !== '') {
    const argv = splitCommandLine(trimmed);
    let command = argv[0];
    const hasSlash = command.includes('/') || command.includes(path.sep);
    if (hasSlash && !path.isAbsolute(command) && workspaceFolders.length > 0) {
      command = path.join(workspaceFolders[0], command);
    }
    return { command, args: argv.slice(1), source: 'setting', display: displayCommand(command, argv.slice(1)) };
  }
  for (const folder of workspaceFolders) {
    for (const rel of ['.venv/bin/inhouse', 'venv/bin/inhouse', '.venv/Scripts/inhouse.exe']) {
      const candidate = path.join(folder, rel);
      if (probes.isExecutable(candidate)) {
        return { command: candidate, args: ['lsp'], source: 'workspace-venv', display: displayCommand(candidate, ['lsp']) };
      }
    }
  }
  const onPath = findExecutable('inhouse', probes);
  if (onPath) return { command: onPath, args: ['lsp'], source: 'path', display: displayCommand('inhouse', ['lsp']) };
  return { command: 'inhouse', args: ['lsp'], source: 'missing', display: 'inhouse lsp' };
}

/**
 * The `inhouse` CLI itself, found exactly as `resolveServerCommand` finds the server: `args` are what comes
 * before the subcommand. A setting such as `python -m app.cli lsp --log-level debug` gives
 * `python -m app.cli`; a setting without an `lsp` word (a wrapper script) cannot be reused for other
 * subcommands, so the automatic lookup (workspace .venv, then PATH) decides.
 */
export function resolveCliCommand(setting: string, workspaceFolders: readonly string[], probes: Probes): ServerCommand {
  const server = resolveServerCommand(setting, workspaceFolders, probes);
  let args: string[] = [];
  if (server.source === 'setting') {
    const at = server.args.indexOf('lsp');
    if (at < 0) return resolveCliCommand('', workspaceFolders, probes);
    args = server.args.slice(0, at);
  }
  const display = server.source === 'path' || server.source === 'missing' ? 'inhouse' : displayCommand(server.command, args);
  return { command: server.command, args, source: server.source, display };
}

/** Why the server did not start: spawn error code (ENOENT, EACCES), or exit code and last stderr lines. */
export interface StartFailure {
  readonly errorCode?: string;
  readonly exitCode?: number | null;
  readonly stderrTail?: string;
  readonly message?: string;
}

export const FIX_HINT =
  'Fix: set "inhouse.server.command" to the command line that starts it (e.g. "/path/to/.venv/bin/inhouse lsp"), ' +
  "or install inhouse (`pip install -e .` in the inhouse checkout) into the workspace's .venv or onto PATH, " +
  'then run "inhouse: Restart Server".';

/** The single message shown when the server cannot start: what failed, the cause, and the fix. */
export function startFailureMessage(cmd: ServerCommand, failure: StartFailure): string {
  let cause: string;
  if (cmd.source === 'missing') {
    cause = 'no `inhouse` executable was found (not in the workspace\'s .venv/bin, not on PATH)';
  } else if (failure.errorCode === 'ENOENT') {
    cause = `\`${cmd.command}\` was not found`;
  } else if (failure.errorCode === 'EACCES') {
    cause = `\`${cmd.command}\` is not executable`;
  } else if (failure.errorCode) {
    cause = `starting \`${cmd.display}\` failed (${failure.errorCode})`;
  } else if (failure.exitCode !== undefined && failure.exitCode !== null) {
    cause = `\`${cmd.display}\` exited with code ${failure.exitCode}`;
  } else {
    cause = `\`${cmd.display}\` stopped before it answered${failure.message ? ` (${failure.message})` : ''}`;
  }
  const tail = (failure.stderrTail ?? '').trim().split('\n').filter((l) => l.trim() !== '').slice(-1)[0];
  const said = tail ? ` It said: "${tail.trim().slice(0, 300)}".` : '';
  return `inhouse: the language server could not start: ${cause}.${said} ${FIX_HINT}`;
}
