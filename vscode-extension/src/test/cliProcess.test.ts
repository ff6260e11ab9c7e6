/** Unit tests: running a CLI command to completion, its output tails, spawn errors, and cancellation. */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import { runCli, TAIL_CHARS } from '../cliProcess';

const node = process.execPath;

/** True while `pid` runs (a zombie waiting for a reaper that a container may not have counts as gone). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true;
  }
}

describe('runCli', function () {
  this.timeout(20000);

  it('returns the exit code and both output streams', async () => {
    const chunks: string[] = [];
    const r = await runCli(node, ['-e', 'console.log("out"); console.error("err line"); process.exit(3)'], {
      cwd: process.cwd(),
      onOutput: (stream, text) => chunks.push(`${stream}:${text.trim()}`),
    }).result;
    assert.equal(r.exitCode, 3);
    assert.equal(r.cancelled, false);
    assert.equal(r.stdout.trim(), 'out');
    assert.equal(r.stderr.trim(), 'err line');
    assert.deepEqual(chunks.sort(), ['stderr:err line', 'stdout:out']);
  });

  it('keeps only the tail of long output', async () => {
    const r = await runCli(node, ['-e', `process.stderr.write("x".repeat(${TAIL_CHARS * 2}) + "\\nlast")`], { cwd: process.cwd() }).result;
    assert.equal(r.stderr.length, TAIL_CHARS);
    assert.ok(r.stderr.endsWith('\nlast'));
  });

  it('reports a command that does not exist as ENOENT', async () => {
    const r = await runCli('/nonexistent/inhouse', ['verif-env'], { cwd: process.cwd() }).result;
    assert.equal(r.errorCode, 'ENOENT');
    assert.equal(r.exitCode, null);
  });

  it('cancel stops the process and what it started', async function () {
    if (process.platform === 'win32') this.skip();
    // the parent starts a child that would sleep for a minute, prints its pid, and sleeps itself
    const script = [
      'const { spawn } = require("node:child_process");',
      'const c = spawn(process.execPath, ["-e", "setTimeout(() => {}, 60000)"], { stdio: "ignore" });',
      'console.log(c.pid);',
      'setTimeout(() => {}, 60000);',
    ].join('\n');
    let childPid = 0;
    let sawPid: () => void = () => undefined;
    const started = new Promise<void>((resolve) => (sawPid = resolve));
    const run = runCli(node, ['-e', script], {
      cwd: process.cwd(),
      onOutput: (stream, text) => {
        if (stream === 'stdout' && /^\d+/.test(text.trim())) {
          childPid = Number(text.trim().split(/\s+/)[0]);
          sawPid();
        }
      },
    });
    await started;
    assert.ok(alive(childPid));
    const t0 = Date.now();
    run.cancel();
    const r = await run.result;
    assert.equal(r.cancelled, true);
    assert.equal(r.exitCode, null);
    assert.equal(r.signal, 'SIGTERM');
    assert.ok(Date.now() - t0 < 5000);
    for (let i = 0; i < 50 && alive(childPid); i++) await new Promise((res) => setTimeout(res, 100));
    assert.equal(alive(childPid), false, `child ${childPid} outlived the cancel`);
  });
});
