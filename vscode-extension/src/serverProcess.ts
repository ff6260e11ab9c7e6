/**
 * The language server process: spawned by the extension itself (not by vscode-languageclient) so the
 * controller sees spawn errors and the last lines of stderr, plus a client that never pops up notifications
 * of its own (the controller shows one clear message instead). Used by controller.ts.
 */
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { LanguageClient, ServerOptions } from 'vscode-languageclient/node';
import { Probes, ServerCommand } from './serverCommand';

/** vscode-languageclient, with every notification it would show sent to the log only. */
export class QuietLanguageClient extends LanguageClient {
  override error(message: string, data?: unknown, _showNotification?: boolean | 'force'): void {
    super.error(message, data, false);
  }
}

/** File-system probes for `resolveServerCommand` on this machine. */
export function systemProbes(): Probes {
  return {
    isExecutable(file: string): boolean {
      try {
        if (!fs.statSync(file).isFile()) return false;
        fs.accessSync(file, fs.constants.X_OK);
        return true;
      } catch {
        return false;
      }
    },
    pathDirs: (process.env.PATH ?? '').split(path.delimiter),
    exeSuffixes: process.platform === 'win32' ? ['.exe', '.cmd', ''] : [''],
  };
}

export interface ProcessWatch {
  onStderr(text: string): void;
  onExit(code: number | null): void;
}

/** ServerOptions that spawn `cmd` over stdio in `cwd`; rejects with the spawn error (ENOENT, EACCES). */
export function spawnServer(cmd: ServerCommand, cwd: string, watch: ProcessWatch): ServerOptions {
  return () =>
    new Promise<ChildProcess>((resolve, reject) => {
      const child = spawn(cmd.command, [...cmd.args], { cwd, env: process.env, stdio: 'pipe' });
      child.stderr?.on('data', (d: Buffer) => watch.onStderr(d.toString('utf8')));
      child.once('error', reject);
      child.once('spawn', () => resolve(child));
      child.once('exit', (code) => watch.onExit(code));
    });
}
