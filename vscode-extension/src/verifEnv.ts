/**
 * The pure half of "inhouse: Generate verification environment for this file": which kind of file it is, the
 * module names a Verilog/SystemVerilog file declares, the output folder, the `inhouse verif-env` arguments,
 * the generated testbench's path, and the one message shown when the CLI fails. No `vscode` import, so the
 * unit tests run it; verifEnvCommand.ts does the prompting, spawning and opening.
 */
import * as path from 'node:path';
import { ServerCommand } from './serverCommand';

export type VerifEnvKind = 'rtl' | 'python';

export const RTL_EXTENSIONS: readonly string[] = Object.freeze(['.v', '.vh', '.sv', '.svh']);

/**
 * What the command does with a file: `rtl` for Verilog/SystemVerilog, `python` for Python, `undefined` for
 * anything else. The VS Code language id decides; the extension as a fallback (plain VS Code has no Verilog
 * language, so a `.v` file is often `plaintext`).
 */
export function verifEnvKind(languageId: string, filePath: string): VerifEnvKind | undefined {
  if (languageId === 'verilog' || languageId === 'systemverilog') return 'rtl';
  if (languageId === 'python') return 'python';
  const ext = path.extname(filePath).toLowerCase();
  if (RTL_EXTENSIONS.includes(ext)) return 'rtl';
  if (ext === '.py') return 'python';
  return undefined;
}

/**
 * `text` with comments, string literals and attribute instances `(* ... *)` replaced by spaces (newlines kept),
 * so that `module` inside them is not a declaration. `@(*)` is a sensitivity list, not an attribute.
 */
export function blankNonCode(text: string): string {
  const out: string[] = [];
  const blank = (s: string) => s.replace(/[^\n]/g, ' ');
  let i = 0;
  while (i < text.length) {
    const two = text.slice(i, i + 2);
    let end = -1;
    if (two === '//') {
      end = text.indexOf('\n', i);
      if (end < 0) end = text.length;
    } else if (two === '/*') {
      end = text.indexOf('*/', i + 2);
      end = end < 0 ? text.length : end + 2;
    } else if (two === '(*' && text[i + 2] !== ')') {
      end = text.indexOf('*)', i + 2);
      end = end < 0 ? text.length : end + 2;
    } else if (text[i] === '"') {
      end = i + 1;
      while (end < text.length && text[end] !== '"' && text[end] !== '\n') end += text[end] === '\\' ? 2 : 1;
      end = Math.min(end + 1, text.length);
    }
    if (end > i) {
      out.push(blank(text.slice(i, end)));
      i = end;
    } else {
      out.push(text[i]);
      i += 1;
    }
  }
  return out.join('');
}

const IDENT = '[A-Za-z_][A-Za-z0-9_$]*';
// `module` / `macromodule`, an optional SystemVerilog lifetime, then the name. Attributes were blanked before.
const MODULE_DECL = new RegExp(`(?<![\\w$\`])(?:macro)?module\\s+(?:(?:automatic|static)\\s+)?(${IDENT})`, 'g');

/** The modules `text` declares, in order, each once (`extern module` prototypes count once with their body). */
export function moduleNames(text: string): string[] {
  const names: string[] = [];
  for (const m of blankNonCode(text).matchAll(MODULE_DECL)) {
    if (!names.includes(m[1])) names.push(m[1]);
  }
  return names;
}

/**
 * The declared modules ordered for the pick list: those no other module of the file instantiates (the likely
 * tops) first, each group in file order. `top` says which are likely tops.
 */
export function topCandidates(text: string): Array<{ name: string; top: boolean }> {
  const code = blankNonCode(text);
  const names = moduleNames(text);
  const instantiated = new Set<string>();
  for (const name of names) {
    // `name #(...) u (` or `name u (`, anywhere but the declaration itself
    const use = new RegExp(`(?<![\\w$\`])${name.replace(/\$/g, '\\$')}\\s*(?:#\\s*\\(|${IDENT}\\s*[([])`, 'g');
    for (const m of code.matchAll(use)) {
      const before = code.slice(0, m.index).trimEnd();
      if (!/(?:^|[^\w$])(?:macro)?module(?:\s+(?:automatic|static))?$/.test(before)) instantiated.add(name);
    }
  }
  const tops = names.filter((n) => !instantiated.has(n)).map((name) => ({ name, top: true }));
  const rest = names.filter((n) => instantiated.has(n)).map((name) => ({ name, top: false }));
  return [...tops, ...rest];
}

/** The folder name (and, for Python, the module name) the CLI uses for a Python file: its stem. */
export function pythonModuleName(filePath: string): string {
  return path.basename(filePath, path.extname(filePath));
}

/** `<workspace>/verif/<top>`; `top` must be a plain name (a module identifier or a Python module stem). */
export function outputFolder(workspaceRoot: string, top: string): string {
  if (!/^[A-Za-z0-9_$][A-Za-z0-9_$.-]*$/.test(top) || top === '.' || top === '..') {
    throw new Error(`"${top}" cannot name an output folder`);
  }
  return path.join(workspaceRoot, 'verif', top);
}

/** Most sibling files passed along; a folder with more gets only the file itself (the CLI lists what is missing). */
export const MAX_SIBLINGS = 500;

/**
 * The Verilog/SystemVerilog files next to `file` (not in subfolders: those may hold generated copies such as
 * `verif/TOP/mutants/`), sorted, without `file`. They go to the CLI after `file`, which keeps only the ones the
 * top instantiates (the file closure), so a top whose submodules live in sibling files builds.
 */
export function siblingRtlFiles(file: string, dirEntries: readonly string[]): string[] {
  const dir = path.dirname(file);
  const own = path.basename(file);
  const found = dirEntries
    .filter((name) => name !== own && ['.v', '.sv'].includes(path.extname(name).toLowerCase()))
    .sort()
    .map((name) => path.join(dir, name));
  return found.length > MAX_SIBLINGS ? [] : found;
}

export interface VerifEnvRequest {
  readonly kind: VerifEnvKind;
  /** Absolute path of the file the command ran on. */
  readonly file: string;
  /** Further RTL files the CLI may take submodules from (`siblingRtlFiles`); ignored for Python. */
  readonly siblings?: readonly string[];
  /** The top module (RTL); ignored for Python. */
  readonly top: string;
  readonly outDir: string;
  /** Overwrite the owned files (reference model, constraints, coverage points). */
  readonly force: boolean;
}

/** The arguments after the `inhouse` executable (and its own prefix arguments, e.g. `-m app.cli`). */
export function verifEnvArgs(req: VerifEnvRequest): string[] {
  const args =
    req.kind === 'python'
      ? ['verif-env', req.file, '--lang', 'python', '-o', req.outDir]
      : ['verif-env', req.file, ...(req.siblings ?? []), '--top', req.top, '-o', req.outDir];
  if (req.force) args.push('--force');
  return args;
}

/** The file to open after a successful run: the cocotb testbench, or the Python smoke-test suite. */
export function testbenchFile(req: VerifEnvRequest): string {
  return req.kind === 'python'
    ? path.join(req.outDir, `test_${pythonModuleName(req.file)}_smoke.py`)
    : path.join(req.outDir, 'tb', `cocotb_${req.top}.py`);
}

/**
 * The last meaningful line of the CLI's stderr: blank lines and the frame lines of a Typer usage-error box
 * (`╭─ Error ─╮`, `╰───╯`) are skipped, the box's `│` borders are removed.
 */
export function lastStderrLine(stderr: string): string | undefined {
  const lines = stderr.split(/\r?\n/).map((l) => l.trim());
  const frame = (l: string) => /^[╭╰┌└]/.test(l) || /^[─━═│\s]*$/.test(l);
  const meaningful = lines.filter((l) => !frame(l)).map((l) => l.replace(/^│\s*|\s*│$/g, '').trim()).filter((l) => l !== '');
  const last = meaningful[meaningful.length - 1];
  return last === undefined ? undefined : last.slice(0, 300);
}

/** How a run ended when it did not succeed. */
export interface VerifEnvFailure {
  /** Spawn error code: ENOENT, EACCES, ... */
  readonly errorCode?: string;
  readonly exitCode?: number | null;
  readonly signal?: string | null;
  readonly stderr?: string;
}

/** The one error message shown when `inhouse verif-env` fails or cannot start. */
export function verifEnvFailureMessage(cli: ServerCommand, failure: VerifEnvFailure): string {
  const display = `${cli.display} verif-env`;
  if (cli.source === 'missing' || failure.errorCode === 'ENOENT') {
    const what = cli.source === 'missing' ? 'no `inhouse` executable was found (not in the workspace\'s .venv/bin, not on PATH)' : `\`${cli.command}\` was not found`;
    return (
      `inhouse: cannot generate the verification environment: ${what}. Fix: install inhouse into the workspace's ` +
      '.venv or onto PATH, or set "inhouse.server.command" (e.g. "/path/to/.venv/bin/inhouse lsp"; the command is ' +
      'that line without `lsp`).'
    );
  }
  let cause: string;
  if (failure.errorCode === 'EACCES') cause = `\`${cli.command}\` is not executable`;
  else if (failure.errorCode) cause = `starting \`${display}\` failed (${failure.errorCode})`;
  else if (failure.exitCode !== undefined && failure.exitCode !== null) cause = `\`${display}\` exited with code ${failure.exitCode}`;
  else if (failure.signal) cause = `\`${display}\` was stopped by ${failure.signal}`;
  else cause = `\`${display}\` failed`;
  const said = lastStderrLine(failure.stderr ?? '');
  return `inhouse: generating the verification environment failed: ${cause}.${said ? ` It said: "${said}"` : ''}`;
}
