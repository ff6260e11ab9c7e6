/** Unit tests: finding the language server command, and the one message shown when it cannot start. */
import { strict as assert } from 'node:assert';
import {
  findExecutable,
  Probes,
  resolveCliCommand,
  resolveServerCommand,
  splitCommandLine,
  startFailureMessage,
} from '../serverCommand';

const probes = (executables: string[], pathDirs = ['/usr/local/bin', '/usr/bin']): Probes => ({
  isExecutable: (f) => executables.includes(f),
  pathDirs,
});

describe('splitCommandLine', () => {
  const cases: Array<[string, string[]]> = [
    ['inhouse lsp', ['inhouse', 'lsp']],
    ['  python   -m app.cli lsp ', ['python', '-m', 'app.cli', 'lsp']],
    ['"/opt/my tools/inhouse" lsp', ['/opt/my tools/inhouse', 'lsp']],
    ["'/a b/c' --x 'y z'", ['/a b/c', '--x', 'y z']],
    ['a\\ b c', ['a b', 'c']],
    ['x ""', ['x', '']],
  ];
  for (const [line, argv] of cases) it(`splits ${line}`, () => assert.deepEqual(splitCommandLine(line), argv));
  it('rejects an unbalanced quote', () => assert.throws(() => splitCommandLine('"abc lsp'), /unbalanced/));
});

describe('resolveServerCommand', () => {
  it('uses the setting first, resolving a relative path against the first folder', () => {
    const c = resolveServerCommand('.venv/bin/python -m app.cli lsp', ['/ws'], probes([]));
    assert.equal(c.source, 'setting');
    assert.equal(c.command, '/ws/.venv/bin/python');
    assert.deepEqual(c.args, ['-m', 'app.cli', 'lsp']);
    assert.equal(c.display, '/ws/.venv/bin/python -m app.cli lsp');
  });

  it('keeps a bare command name from the setting for PATH lookup', () => {
    const c = resolveServerCommand('inhouse lsp --log-level debug', ['/ws'], probes([]));
    assert.equal(c.command, 'inhouse');
    assert.deepEqual(c.args, ['lsp', '--log-level', 'debug']);
  });

  it('finds the workspace virtual environment', () => {
    const c = resolveServerCommand('', ['/a', '/b'], probes(['/b/.venv/bin/inhouse', '/usr/bin/inhouse']));
    assert.equal(c.source, 'workspace-venv');
    assert.equal(c.command, '/b/.venv/bin/inhouse');
    assert.deepEqual(c.args, ['lsp']);
  });

  it('falls back to inhouse on PATH, then reports it missing', () => {
    const c = resolveServerCommand('', ['/a'], probes(['/usr/bin/inhouse']));
    assert.equal(c.source, 'path');
    assert.equal(c.command, '/usr/bin/inhouse');
    const m = resolveServerCommand('', ['/a'], probes([]));
    assert.equal(m.source, 'missing');
  });

  it('findExecutable checks PATH in order and absolute paths directly', () => {
    const p = probes(['/usr/bin/inhouse', '/usr/local/bin/inhouse', '/x/y']);
    assert.equal(findExecutable('inhouse', p), '/usr/local/bin/inhouse');
    assert.equal(findExecutable('/x/y', p), '/x/y');
    assert.equal(findExecutable('/x/z', p), undefined);
    assert.equal(findExecutable('python9', p), undefined);
  });
});

describe('startFailureMessage', () => {
  it('says what was not found and how to fix it, in one message', () => {
    const cmd = resolveServerCommand('', ['/ws'], probes([]));
    const msg = startFailureMessage(cmd, { errorCode: 'ENOENT' });
    assert.match(msg, /^inhouse: the language server could not start: no `inhouse` executable was found/);
    assert.match(msg, /inhouse\.server\.command/);
    assert.match(msg, /pip install -e \./);
    assert.match(msg, /inhouse: Restart Server/);
    assert.equal(msg.split('\n').length, 1);
  });

  it('names a wrong configured command', () => {
    const cmd = resolveServerCommand('/nope/python -m app.cli lsp', [], probes([]));
    assert.match(startFailureMessage(cmd, { errorCode: 'ENOENT' }), /`\/nope\/python` was not found/);
    assert.match(startFailureMessage(cmd, { errorCode: 'EACCES' }), /is not executable/);
  });

  it('quotes the last line the server printed when it exited', () => {
    const cmd = resolveServerCommand('python3 -m app.cli lsp', [], probes([]));
    const msg = startFailureMessage(cmd, {
      exitCode: 1,
      stderrTail: 'Traceback (most recent call last):\n  ...\nModuleNotFoundError: No module named \'core\'\n\n',
    });
    assert.match(msg, /`python3 -m app.cli lsp` exited with code 1/);
    assert.match(msg, /It said: "ModuleNotFoundError: No module named 'core'"/);
  });
});

describe('resolveCliCommand', () => {
  it('finds the CLI where the server is found, without the lsp subcommand', () => {
    const venv = resolveCliCommand('', ['/ws'], probes(['/ws/.venv/bin/inhouse', '/usr/bin/inhouse']));
    assert.deepEqual([venv.command, venv.args, venv.source], ['/ws/.venv/bin/inhouse', [], 'workspace-venv']);
    const onPath = resolveCliCommand('', ['/ws'], probes(['/usr/bin/inhouse']));
    assert.deepEqual([onPath.command, onPath.args, onPath.display], ['/usr/bin/inhouse', [], 'inhouse']);
    assert.equal(resolveCliCommand('', ['/ws'], probes([])).source, 'missing');
  });

  it('takes the setting up to its lsp word', () => {
    const c = resolveCliCommand('.venv/bin/python -m app.cli lsp --log-level debug', ['/ws'], probes([]));
    assert.equal(c.source, 'setting');
    assert.equal(c.command, '/ws/.venv/bin/python');
    assert.deepEqual(c.args, ['-m', 'app.cli']);
    assert.equal(c.display, '/ws/.venv/bin/python -m app.cli');
  });

  it('falls back to the automatic lookup for a setting without lsp (a wrapper script)', () => {
    const c = resolveCliCommand('/opt/start-lsp.sh', ['/ws'], probes(['/ws/venv/bin/inhouse']));
    assert.deepEqual([c.command, c.args, c.source], ['/ws/venv/bin/inhouse', [], 'workspace-venv']);
  });
});
