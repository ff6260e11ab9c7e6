from __future__ import annotations

import os
import sys
import time

from verifenv import process


def test_wall_clock_timeout_kills_the_whole_group(tmp_path):
    pidfile = tmp_path / "child.pid"
    script = (f"import subprocess, sys, time\n"
              f"p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
              f"open({str(pidfile)!r}, 'w').write(str(p.pid))\n"
              f"time.sleep(60)\n")
    result = process.run([sys.executable, "-c", script], tmp_path, os.environ, timeout_s=3)
    assert result.timed_out and result.returncode is None
    child = int(pidfile.read_text())
    for _ in range(50):  # the grandchild (think: a simulator under pytest) must be gone too
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the grandchild survived the timeout")


def test_pytest_exit_codes_2_to_5_are_harness_errors(tmp_path):
    (tmp_path / "test_one.py").write_text("def test_ok():\n    pass\n\ndef test_bad():\n    assert False\n")
    env = dict(os.environ, PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
    env.pop("PYTEST_ADDOPTS", None)

    def pytest(*args: str) -> process.RunResult:
        return process.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args], tmp_path, env, 120)

    assert pytest("test_one.py", "-k", "ok").returncode == 0
    failed = pytest("test_one.py")
    assert failed.returncode == 1 and not failed.harness_error
    no_tests = pytest("test_one.py", "-k", "nothing_matches")
    assert no_tests.returncode == 5 and no_tests.harness_error
    usage = pytest("--no-such-option")
    assert usage.returncode == 4 and usage.harness_error


def test_memory_limit_stops_a_run_that_grows_without_bound(tmp_path):
    grow = "x = []\nwhile True:\n    x.append(bytearray(50 * 1024 * 1024))\n"
    result = process.run([sys.executable, "-c", grow], tmp_path, os.environ, 60, memory_limit_mb=512)
    assert result.returncode not in (0, None) and "MemoryError" in result.output
