/**
 * Unit tests: the VS Code side of "Generate verification environment for this file" against a recording
 * stand-in for the `vscode` module and a stand-in `inhouse` script in the workspace's .venv (so the real
 * lookup, spawn, progress, cancel, open and messages run; the real CLI's contract is in verifEnv.test.ts).
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import Module from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';

type Call = [string, ...unknown[]];

class FakeUri {
  readonly scheme = 'file';
  constructor(readonly fsPath: string) {}
  static file(p: string): FakeUri {
    return new FakeUri(p);
  }
  toString(): string {
    return `file://${this.fsPath}`;
  }
}

interface Answers {
  warning?: string;
  pick?: string;
  cancelAfterMs?: number;
}

/** The parts of the `vscode` API the command uses, recording every call. */
function fakeVscode(state: { calls: Call[]; answers: Answers; ws: string; active?: unknown }) {
  const record = (name: string) => (...args: unknown[]) => {
    state.calls.push([name, ...args]);
    return Promise.resolve(undefined);
  };
  return {
    Uri: FakeUri,
    ProgressLocation: { Notification: 15 },
    window: {
      get activeTextEditor() {
        return state.active;
      },
      showErrorMessage: record('error'),
      showInformationMessage: record('info'),
      showWarningMessage: (...args: unknown[]) => {
        state.calls.push(['warning', ...args]);
        return Promise.resolve(state.answers.warning);
      },
      showQuickPick: (items: Array<{ label: string }>, options: unknown) => {
        state.calls.push(['pick', items, options]);
        return Promise.resolve(items.find((i) => i.label === state.answers.pick));
      },
      withProgress: (options: unknown, task: (p: unknown, token: unknown) => Promise<unknown>) => {
        state.calls.push(['progress', options]);
        const listeners: Array<() => void> = [];
        const token = {
          onCancellationRequested: (fn: () => void) => {
            listeners.push(fn);
            return { dispose: () => undefined };
          },
        };
        if (state.answers.cancelAfterMs !== undefined) setTimeout(() => listeners.forEach((fn) => fn()), state.answers.cancelAfterMs);
        return task({ report: () => undefined }, token);
      },
      showTextDocument: (uri: FakeUri) => {
        state.calls.push(['open', uri.fsPath]);
        return Promise.resolve(undefined);
      },
    },
    workspace: {
      textDocuments: [],
      get workspaceFolders() {
        return [{ uri: FakeUri.file(state.ws) }];
      },
      getWorkspaceFolder: () => ({ uri: FakeUri.file(state.ws) }),
      getConfiguration: () => ({ get: () => undefined }),
      openTextDocument: () => Promise.reject(new Error('not used')),
    },
    commands: {
      executeCommand: (id: string, uri: FakeUri) => {
        state.calls.push(['command', id, uri.fsPath]);
        return Promise.resolve(undefined);
      },
    },
  };
}

// Stand-in CLI: records its arguments, fails for top "nope", hangs for top "slow", else writes the testbench.
const FAKE_CLI = `#!/bin/sh
printf '%s\\n' "$@" > "$(dirname "$0")/../../cli-args.txt"
top=""; out=""
while [ $# -gt 0 ]; do
  case "$1" in --top) top="$2"; shift ;; -o) out="$2"; shift ;; esac
  shift
done
if [ "$top" = nope ]; then echo "Traceback is not shown" >&2; echo "inhouse: error: module 'nope' is not declared" >&2; exit 2; fi
if [ "$top" = slow ]; then sleep 30; fi
mkdir -p "$out/tb" && echo "# tb" > "$out/tb/cocotb_$top.py"
`;

describe('the Generate verification environment command (VS Code side)', function () {
  this.timeout(20000);
  let ws = '';
  const state: { calls: Call[]; answers: Answers; ws: string; active?: unknown } = { calls: [], answers: {}, ws: '' };
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  let VerifEnvCommand: any;
  const log = { info: () => undefined, warn: () => undefined, show: () => undefined };

  before(function () {
    if (process.platform === 'win32') this.skip();
    ws = fs.mkdtempSync(path.join(os.tmpdir(), 'inhouse-cmd-'));
    state.ws = ws;
    fs.mkdirSync(path.join(ws, '.venv/bin'), { recursive: true });
    fs.writeFileSync(path.join(ws, '.venv/bin/inhouse'), FAKE_CLI, { mode: 0o755 });
    fs.mkdirSync(path.join(ws, 'rtl'));
    const fake = fakeVscode(state);
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const mod = Module as any;
    const resolve = mod._resolveFilename;
    const fakePath = path.join(ws, 'vscode-stand-in.js');
    fs.writeFileSync(fakePath, 'module.exports = {};');
    require(fakePath);
    // vscode-languageclient (loaded through serverProcess.ts) subclasses parts of the API at load time
    require.cache[fakePath]!.exports = new Proxy(fake as Record<string | symbol, unknown>, {
      get: (t, k) => (k in t ? t[k] : (t[k] = class {})),
    });
    mod._resolveFilename = function (request: string, ...rest: unknown[]) {
      return request === 'vscode' ? fakePath : resolve.call(this, request, ...rest);
    };
    try {
      VerifEnvCommand = require('../verifEnvCommand').VerifEnvCommand;
    } finally {
      mod._resolveFilename = resolve;
    }
  });
  after(() => {
    if (ws) fs.rmSync(ws, { recursive: true, force: true });
  });

  function editor(rel: string, text: string, languageId = 'verilog'): void {
    const file = path.join(ws, rel);
    fs.writeFileSync(file, text);
    state.active = { document: { uri: FakeUri.file(file), languageId, isDirty: false, getText: () => text, save: async () => true } };
  }

  async function run(answers: Answers = {}): Promise<{ calls: Call[]; args: string[] }> {
    state.calls = [];
    state.answers = answers;
    const argsFile = path.join(ws, 'cli-args.txt');
    fs.rmSync(argsFile, { force: true });
    await new VerifEnvCommand(log).run();
    const args = fs.existsSync(argsFile) ? fs.readFileSync(argsFile, 'utf8').trim().split('\n') : [];
    return { calls: state.calls, args };
  }
  const kinds = (calls: Call[]) => calls.map((c) => c[0]);

  it('runs the CLI from the workspace .venv with the sibling files, opens the testbench, reveals the folder', async () => {
    fs.writeFileSync(path.join(ws, 'rtl/sub.v'), 'module sub; endmodule\n');
    editor('rtl/top.v', '(* keep *) module top (input clk);\n  sub u ();\nendmodule\n');
    const { calls, args } = await run();
    const out = path.join(ws, 'verif/top');
    assert.deepEqual(args, ['verif-env', path.join(ws, 'rtl/top.v'), path.join(ws, 'rtl/sub.v'), '--top', 'top', '-o', out]);
    assert.deepEqual(kinds(calls), ['progress', 'open', 'command', 'info']);
    assert.equal((calls[0][1] as { cancellable: boolean }).cancellable, true);
    assert.deepEqual(calls[1], ['open', path.join(out, 'tb/cocotb_top.py')]);
    assert.deepEqual(calls[2], ['command', 'revealInExplorer', out]);
  });

  it('asks before overwriting: Overwrite adds --force, Keep My Edits does not, dismissing runs nothing', async () => {
    editor('rtl/top.v', 'module top; endmodule\n');
    const forced = await run({ warning: 'Overwrite' });
    assert.equal(forced.calls[0][0], 'warning');
    assert.deepEqual((forced.calls[0] as unknown[]).slice(3), ['Overwrite', 'Keep My Edits']);
    assert.equal(forced.args[forced.args.length - 1], '--force');
    const kept = await run({ warning: 'Keep My Edits' });
    assert.ok(!kept.args.includes('--force'));
    const dismissed = await run({ warning: undefined });
    assert.deepEqual(kinds(dismissed.calls), ['warning']);
    assert.deepEqual(dismissed.args, []);
  });

  it('lets the user pick among several modules, likely tops first', async () => {
    editor('rtl/multi.v', 'module leaf; endmodule\nmodule hub; leaf l (); endmodule\n');
    const { calls, args } = await run({ pick: 'leaf' });
    const items = (calls[0][1] as Array<{ label: string }>).map((i) => i.label);
    assert.deepEqual(items, ['hub', 'leaf']);
    assert.deepEqual(args.slice(args.indexOf('--top'), args.indexOf('--top') + 2), ['--top', 'leaf']);
    const none = await run({ pick: undefined });
    assert.deepEqual(kinds(none.calls), ['pick']);
  });

  it('shows one error with the CLI\'s last stderr line when it fails', async () => {
    editor('rtl/bad.v', 'module nope; endmodule\n');
    const { calls } = await run();
    assert.deepEqual(kinds(calls), ['progress', 'error']);
    assert.match(String(calls[1][1]), /`.*\/\.venv\/bin\/inhouse verif-env` exited with code 2\. It said: "inhouse: error: module 'nope' is not declared"$/);
    assert.equal(calls[1][2], 'Show Log');
  });

  it('stops the CLI when the progress notification is cancelled, and says nothing more', async () => {
    editor('rtl/slow.v', 'module slow; endmodule\n');
    const t0 = Date.now();
    const { calls } = await run({ cancelAfterMs: 300 });
    assert.ok(Date.now() - t0 < 5000, 'the run should end soon after the cancel');
    assert.deepEqual(kinds(calls), ['progress']);
    assert.equal(fs.existsSync(path.join(ws, 'verif/slow')), false);
  });

  it('refuses files without a module and files of other languages', async () => {
    editor('rtl/empty.v', '// nothing here\n');
    const empty = await run();
    assert.deepEqual(kinds(empty.calls), ['error']);
    assert.match(String(empty.calls[0][1]), /declares no module/);
    editor('notes.ts', 'export {};', 'typescript');
    const ts = await run();
    assert.deepEqual(kinds(ts.calls), ['error']);
    assert.deepEqual(ts.args, []);
  });
});
