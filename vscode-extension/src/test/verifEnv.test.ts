/** Unit tests: the pure logic of "Generate verification environment for this file", and its CLI contract. */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runCli } from '../cliProcess';
import { Probes, resolveCliCommand } from '../serverCommand';
import {
  blankNonCode,
  lastStderrLine,
  MAX_SIBLINGS,
  moduleNames,
  outputFolder,
  siblingRtlFiles,
  testbenchFile,
  topCandidates,
  verifEnvArgs,
  verifEnvFailureMessage,
  verifEnvKind,
  VerifEnvRequest,
} from '../verifEnv';

describe('moduleNames', () => {
  const cases: Array<[string, string, string[]]> = [
    ['a plain module', 'module counter (input clk);\nendmodule\n', ['counter']],
    ['parameters right after the name', 'module fifo #(parameter W = 8) (input clk);\nendmodule', ['fifo']],
    ['no space before the ports', 'module adder95(a, b);\nendmodule', ['adder95']],
    ['attributes first', '(* keep_hierarchy = "yes" *) (* dont_touch *)\nmodule top_attr (input a);\nendmodule', ['top_attr']],
    ['an attribute naming another module', '(* src = "module fake" *) module real_one; endmodule', ['real_one']],
    ['a SystemVerilog lifetime', 'module automatic auto_m; endmodule\nmodule static stat_m; endmodule', ['auto_m', 'stat_m']],
    ['macromodule', 'macromodule mm (x); endmodule', ['mm']],
    ['line and block comments', '// module in_comment\n/* module in_block\n module too */\nmodule after_comments; endmodule', ['after_comments']],
    ['strings', '$display("module not_me");\nmodule yes_me; endmodule', ['yes_me']],
    ['endmodule is no declaration', 'module a; endmodule\nendmodule\nmodule b; endmodule', ['a', 'b']],
    ['several, in order, each once', 'extern module p(input x);\nmodule q; endmodule\nmodule p(input x); endmodule', ['p', 'q']],
    ['identifiers with $ and digits', 'module m$1_x2 (); endmodule', ['m$1_x2']],
    ['an always @(*) is not an attribute', 'module s; always @(*) x = 1; endmodule\nmodule t; endmodule', ['s', 't']],
    ['interfaces and packages are not modules', 'interface bus_if; endinterface\npackage p; endpackage', []],
    ['a name on the next line', 'module\n  split_name\n  (input a);\nendmodule', ['split_name']],
    ['nothing in an empty file', '', []],
  ];
  for (const [what, text, names] of cases) it(what, () => assert.deepEqual(moduleNames(text), names));

  it('blankNonCode keeps line structure', () => {
    const text = 'a // x\n/* y\nz */ b "s" (* k *) @(*)';
    const blanked = blankNonCode(text);
    assert.equal(blanked.length, text.length);
    assert.equal(blanked.split('\n').length, text.split('\n').length);
    assert.match(blanked, /^a\s+\n\s+\n\s+b\s+@\(\*\)$/);
  });

  it('reads the repository fixtures the CLI reads', () => {
    const rtl = path.resolve(__dirname, '../../../tests/verifenv/rtl');
    if (!fs.existsSync(rtl)) return;
    assert.deepEqual(moduleNames(fs.readFileSync(path.join(rtl, 'counter.v'), 'utf8')), ['counter']);
    assert.deepEqual(moduleNames(fs.readFileSync(path.join(rtl, 'fifo.sv'), 'utf8')), ['fifo']);
  });
});

describe('topCandidates', () => {
  const text = [
    'module leaf #(parameter W = 1) (input a); endmodule',
    'module mid (input a);',
    '  leaf #(.W(2)) u_leaf (.a(a));',
    'endmodule',
    'module top (input a);',
    '  mid u_mid (.a(a));',
    '  leaf arr [1:0] (.a(a));',
    'endmodule',
    'module tb; endmodule',
  ].join('\n');

  it('puts the modules no one instantiates first, each group in file order', () => {
    assert.deepEqual(topCandidates(text), [
      { name: 'top', top: true },
      { name: 'tb', top: true },
      { name: 'leaf', top: false },
      { name: 'mid', top: false },
    ]);
  });

  it('does not count a declaration with parameters as an instance', () => {
    assert.deepEqual(topCandidates('module only #(parameter N = 2) (input a); endmodule'), [{ name: 'only', top: true }]);
  });

  it('ignores instances inside comments', () => {
    assert.deepEqual(topCandidates('module a; endmodule\nmodule b; // a u (x);\nendmodule').map((c) => c.top), [true, true]);
  });
});

describe('verifEnvKind', () => {
  it('goes by the language id', () => {
    assert.equal(verifEnvKind('verilog', '/w/x.txt'), 'rtl');
    assert.equal(verifEnvKind('systemverilog', '/w/x'), 'rtl');
    assert.equal(verifEnvKind('python', '/w/x'), 'python');
  });
  it('falls back to the extension (plain VS Code has no Verilog language)', () => {
    assert.equal(verifEnvKind('plaintext', '/w/a.v'), 'rtl');
    assert.equal(verifEnvKind('plaintext', '/w/a.SV'), 'rtl');
    assert.equal(verifEnvKind('plaintext', '/w/a.py'), 'python');
    assert.equal(verifEnvKind('typescript', '/w/a.ts'), undefined);
    assert.equal(verifEnvKind('plaintext', '/w/notes.txt'), undefined);
  });
});

describe('outputFolder', () => {
  it('is <workspace>/verif/<top>', () => assert.equal(outputFolder('/ws', 'counter'), path.join('/ws', 'verif', 'counter')));
  it('refuses names that are not one folder', () => {
    for (const bad of ['', '..', '.', 'a/b', '../x', 'a b']) assert.throws(() => outputFolder('/ws', bad), /cannot name/);
  });
});

describe('verifEnvArgs and testbenchFile', () => {
  const rtl: VerifEnvRequest = {
    kind: 'rtl',
    file: '/ws/rtl/pipe_top.v',
    siblings: ['/ws/rtl/stream_reg.v'],
    top: 'pipe_top',
    outDir: '/ws/verif/pipe_top',
    force: false,
  };
  const py: VerifEnvRequest = { kind: 'python', file: '/ws/src/shapes.py', top: 'shapes', outDir: '/ws/verif/shapes', force: false };

  it('builds the RTL command: the file first, then the siblings, --top, -o', () => {
    assert.deepEqual(verifEnvArgs(rtl), ['verif-env', '/ws/rtl/pipe_top.v', '/ws/rtl/stream_reg.v', '--top', 'pipe_top', '-o', '/ws/verif/pipe_top']);
  });
  it('adds --force only when asked', () => {
    assert.deepEqual(verifEnvArgs({ ...rtl, siblings: undefined, force: true }), [
      'verif-env', '/ws/rtl/pipe_top.v', '--top', 'pipe_top', '-o', '/ws/verif/pipe_top', '--force',
    ]);
  });
  it('builds the Python command with --lang python and no --top', () => {
    assert.deepEqual(verifEnvArgs(py), ['verif-env', '/ws/src/shapes.py', '--lang', 'python', '-o', '/ws/verif/shapes']);
    assert.deepEqual(verifEnvArgs({ ...py, siblings: ['/ws/src/other.py'] }).includes('/ws/src/other.py'), false);
  });
  it('opens the cocotb testbench or the smoke suite', () => {
    assert.equal(testbenchFile(rtl), path.join('/ws/verif/pipe_top', 'tb', 'cocotb_pipe_top.py'));
    assert.equal(testbenchFile(py), path.join('/ws/verif/shapes', 'test_shapes_smoke.py'));
  });
});

describe('siblingRtlFiles', () => {
  it('lists the other .v/.sv files of the folder, sorted', () => {
    assert.deepEqual(siblingRtlFiles('/ws/rtl/top.v', ['z.sv', 'top.v', 'a.v', 'inc.vh', 'notes.md', 'b.V', 'top.f']), [
      '/ws/rtl/a.v', '/ws/rtl/b.V', '/ws/rtl/z.sv',
    ]);
  });
  it('gives up on huge folders', () => {
    const many = Array.from({ length: MAX_SIBLINGS + 1 }, (_, i) => `m${i}.v`);
    assert.deepEqual(siblingRtlFiles('/ws/top.v', many), []);
  });
});

describe('lastStderrLine and verifEnvFailureMessage', () => {
  it('takes the last line the CLI printed', () => {
    assert.equal(lastStderrLine("warning: x\ninhouse: error: module 'nope' is not declared\n\n"), "inhouse: error: module 'nope' is not declared");
    assert.equal(lastStderrLine('\n  \n'), undefined);
  });
  it('reads through a usage-error box', () => {
    const box = [
      'Usage: inhouse verif-env [OPTIONS] {rtl}...',
      "Try 'inhouse verif-env --help' for help.",
      '╭─ Error ─────────────────────────────╮',
      "│ Missing option '--out' / '-o'.      │",
      '╰─────────────────────────────────────╯',
      '',
    ].join('\n');
    assert.equal(lastStderrLine(box), "Missing option '--out' / '-o'.");
  });

  const probes = (executables: string[]): Probes => ({ isExecutable: (f) => executables.includes(f), pathDirs: ['/usr/bin'] });

  it('says the executable is missing, with the fix', () => {
    const cli = resolveCliCommand('', ['/ws'], probes([]));
    const msg = verifEnvFailureMessage(cli, { errorCode: 'ENOENT' });
    assert.match(msg, /no `inhouse` executable was found/);
    assert.match(msg, /inhouse\.server\.command/);
    assert.equal(msg.split('\n').length, 1);
  });
  it('names the command, the exit code and the last stderr line', () => {
    const cli = resolveCliCommand('', ['/ws'], probes(['/ws/.venv/bin/inhouse']));
    const msg = verifEnvFailureMessage(cli, { exitCode: 2, stderr: "inhouse: error: module 'nope' is not declared\n" });
    assert.equal(
      msg,
      "inhouse: generating the verification environment failed: `/ws/.venv/bin/inhouse verif-env` exited with code 2. " +
        `It said: "inhouse: error: module 'nope' is not declared"`,
    );
    assert.match(verifEnvFailureMessage(cli, { exitCode: null, signal: 'SIGKILL' }), /stopped by SIGKILL\.$/);
  });
});

// The contract with the real CLI: the arguments built here run, and the file opened afterwards exists.
describe('inhouse verif-env (the real CLI, when the repository .venv has it)', function () {
  this.timeout(120000);
  const repo = path.resolve(__dirname, '../../..');
  const rtlDir = path.join(repo, 'tests/verifenv/rtl');
  const probes: Probes = {
    isExecutable: (f) => {
      try {
        fs.accessSync(f, fs.constants.X_OK);
        return fs.statSync(f).isFile();
      } catch {
        return false;
      }
    },
    pathDirs: [],
  };
  const cli = resolveCliCommand('', [repo], probes);
  let tmp = '';
  before(function () {
    if (cli.source !== 'workspace-venv' || !fs.existsSync(rtlDir)) this.skip();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'inhouse-verifenv-'));
  });
  after(() => {
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('generates an RTL environment whose submodule comes from a sibling file', async () => {
    const file = path.join(rtlDir, 'pipe_top.v');
    const top = topCandidates(fs.readFileSync(file, 'utf8'))[0].name;
    const req: VerifEnvRequest = {
      kind: 'rtl', file, siblings: siblingRtlFiles(file, fs.readdirSync(rtlDir)), top, outDir: outputFolder(tmp, top), force: false,
    };
    const r = await runCli(cli.command, [...cli.args, ...verifEnvArgs(req)], { cwd: repo }).result;
    assert.equal(r.exitCode, 0, r.stderr);
    assert.ok(fs.existsSync(testbenchFile(req)), testbenchFile(req));
    assert.match(fs.readFileSync(path.join(req.outDir, 'rtl.f'), 'utf8'), /stream_reg\.v/);
    const again = await runCli(cli.command, [...cli.args, ...verifEnvArgs({ ...req, force: true })], { cwd: repo }).result;
    assert.equal(again.exitCode, 0, again.stderr);
  });

  it('generates the Python smoke suite', async () => {
    const file = path.join(repo, 'tests/verifenv/py/shapes.py');
    const req: VerifEnvRequest = { kind: 'python', file, top: 'shapes', outDir: outputFolder(tmp, 'shapes'), force: false };
    const r = await runCli(cli.command, [...cli.args, ...verifEnvArgs(req)], { cwd: repo }).result;
    assert.equal(r.exitCode, 0, r.stderr);
    assert.ok(fs.existsSync(testbenchFile(req)), testbenchFile(req));
  });

  it('fails with one line naming the problem for a wrong top', async () => {
    const file = path.join(rtlDir, 'counter.v');
    const req: VerifEnvRequest = { kind: 'rtl', file, top: 'nope', outDir: outputFolder(tmp, 'nope'), force: false };
    const r = await runCli(cli.command, [...cli.args, ...verifEnvArgs(req)], { cwd: repo }).result;
    assert.notEqual(r.exitCode, 0);
    assert.match(verifEnvFailureMessage(cli, r), /exited with code \d+\. It said: ".*module 'nope' is not declared/);
  });
});

describe('package.json contributes the command', () => {
  const manifest = JSON.parse(fs.readFileSync(path.resolve(__dirname, '../../package.json'), 'utf8'));
  const id = 'inhouse.generateVerifEnv';

  it('with its title, in the palette and the editor context menu for RTL and Python files', () => {
    const cmd = manifest.contributes.commands.find((c: { command: string }) => c.command === id);
    assert.equal(`${cmd.category}: ${cmd.title}`, 'inhouse: Generate verification environment for this file');
    for (const menu of ['commandPalette', 'editor/context']) {
      const entry = manifest.contributes.menus[menu].find((m: { command: string }) => m.command === id);
      assert.ok(entry, menu);
      for (const lang of ['verilog', 'systemverilog', 'python']) assert.match(entry.when, new RegExp(`\\b${lang}\\b`));
      assert.match(entry.when, /resourceScheme == file/);
      // the extension fallback of the when clause agrees with verifEnvKind
      const extRegex = /resourceExtname =~ \/(.*)\/\)?$/.exec(entry.when);
      assert.ok(extRegex, entry.when);
      const re = new RegExp(extRegex[1]);
      for (const ext of ['.v', '.vh', '.sv', '.svh', '.py']) assert.ok(re.test(ext) && verifEnvKind('plaintext', `/w/a${ext}`), ext);
      assert.ok(!re.test('.ts') && !re.test('.vhd'));
    }
  });
});
