"""`inhouse corpus build` / `stats` through the real console entry point (a subprocess)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

from tests.finetune.corpus.conftest import make_git_repo


def run(*args, **kw):
    return subprocess.run([sys.executable, "-m", "app.cli", *args], capture_output=True, text=True, **kw)


def test_build_then_stats_then_refuse_existing(tmp_path, tiny_model_dir):
    repo = make_git_repo(tmp_path / "svc", {f"svc/m{i}.py": f"def f{i}(x):\n    if x > {i}:\n        return x - {i}\n"
                                            f"    return g(x, {i})\n\n\ndef g(a, b):\n    return a * b + {i}\n"
                                            for i in range(8)})
    out = tmp_path / "ds"
    proc = run("corpus", "build", str(repo), "-o", str(out), "--model", str(tiny_model_dir), "--seed", "7",
               "--workers", "1", "--eval-fraction", "0.2", "--dev-fraction", "0.1", "--max-examples-per-file", "3")
    assert proc.returncode == 0, proc.stderr
    assert "wrote" in proc.stdout and "starcoder" in proc.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["seed"] == 7 and manifest["config"]["max_examples_per_file"] == 3
    assert manifest["tokenizer"] == str(tiny_model_dir)
    proc = run("corpus", "stats", str(out))
    assert proc.returncode == 0, proc.stderr
    for word in ("per language", "filter", "span kinds", "python", "secrets", "rows per split"):
        assert word in proc.stdout, word
    proc = run("corpus", "build", str(repo), "-o", str(out), "--model", str(tiny_model_dir))
    assert proc.returncode == 2 and "already exists" in proc.stderr and "Traceback" not in proc.stderr


def test_clear_errors(tmp_path, tiny_model_dir):
    proc = run("corpus", "build", str(tmp_path / "nope"), "-o", str(tmp_path / "o"), "--model", str(tiny_model_dir))
    assert proc.returncode == 2 and "does not exist" in proc.stderr and "Traceback" not in proc.stderr
    proc = run("corpus", "build", str(tmp_path), "-o", str(tmp_path / "o"), "--tokenizer",
               str(tiny_model_dir / "tokenizer.json"))
    assert proc.returncode == 2 and "--fim-format" in proc.stderr


def test_config_and_stats_errors_in_process(tmp_path):
    import pytest
    from typer.testing import CliRunner

    from core.errors import ConfigError, CorpusError
    from finetune.corpus.cli import app
    from finetune.corpus.config import CorpusConfig

    with pytest.raises(ConfigError, match="eval_since"):
        CorpusConfig(eval_since="last tuesday")
    with pytest.raises(ConfigError, match="fim_rate"):
        CorpusConfig(fim_rate=1.5)
    with pytest.raises(ConfigError, match="span_mix"):
        CorpusConfig(span_mix={"nonsense": 1.0})
    result = CliRunner().invoke(app, ["stats", str(tmp_path)])
    assert isinstance(result.exception, CorpusError) and "not a corpus dataset" in str(result.exception)


def test_ctrl_c_stops_a_build_with_130_and_leaves_nothing(tmp_path, tiny_model_dir):
    import signal
    import time

    from tests.finetune.corpus.conftest import package_source

    # Eight copies of rich: every copy is read, filtered, redacted and signed before dedup drops the exact
    # duplicates, so the first pass lasts seconds, far longer than a busy machine delays this test's signal.
    repo = tmp_path / "src"
    for k in range(8):
        shutil.copytree(package_source("rich"), repo / f"copy{k}", ignore=shutil.ignore_patterns("__pycache__"))
    make_git_repo(repo)
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "corpus", "build", str(repo), "-o",
                             str(tmp_path / "ds"), "--model", str(tiny_model_dir), "--workers", "2", "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            # as in a terminal: a test run started in the background (nohup, `&` in a script)
                            # ignores SIGINT, and Python keeps ignoring it when it starts ignored
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".ds.*.spool/*")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)  # the workers' spool files appear with the first files they prepare
    assert proc.poll() is None, "the build ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "inhouse: interrupted" in err and "Traceback" not in err, (out, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]  # no dataset, no partial directory, no spool


def test_the_dedup_process_ends_by_itself_when_a_build_stops_before_it():
    import multiprocessing

    from finetune.corpus.config import CorpusConfig
    from finetune.corpus.pipeline import _Reducer

    reducer = _Reducer(multiprocessing.get_context("fork"), CorpusConfig())
    reducer.close()  # no signatures sent: the process reads end of file and returns, it is not terminated
    assert reducer.proc.exitcode == 0
