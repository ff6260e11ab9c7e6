from __future__ import annotations

import subprocess
import sys


def run(*args, **kw):
    return subprocess.run([sys.executable, "-m", "app.cli", *args], capture_output=True, text=True, **kw)


def test_help_lists_components():
    proc = run("--help")
    assert proc.returncode == 0
    for name in ("model", "version"):
        assert name in proc.stdout


def test_version_prints_version_and_sha():
    proc = run("version")
    assert proc.returncode == 0 and proc.stdout.startswith("inhouse 0.") and "git" in proc.stdout


def test_missing_config_file_is_one_clear_line(tmp_path):
    proc = run("--config", str(tmp_path / "nope.toml"), "version")
    assert proc.returncode != 0
    assert "does not exist" in proc.stderr and "Traceback" not in proc.stderr


def test_error_without_traceback_then_with_debug(tmp_path):
    proc = run("model", "import-gguf", str(tmp_path / "missing.gguf"), "-o", str(tmp_path / "out"))
    assert proc.returncode == 2
    assert "GGUF file" in proc.stderr and "does not exist" in proc.stderr and "Traceback" not in proc.stderr
    proc = run("--debug", "model", "import-gguf", str(tmp_path / "missing.gguf"), "-o", str(tmp_path / "out"))
    assert "Traceback" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_unknown_flag_is_usage_error():
    proc = run("version", "--bogus")
    assert proc.returncode == 2 and "No such option" in proc.stderr


def test_config_flag_reaches_the_components_under_python_m(tmp_path):
    """`python -m app.cli --config F ...` (how the demo and the editors start it) applies F to the component."""
    bad = tmp_path / "inhouse.toml"
    bad.write_text("[corpus]\neval_fractoin = 0.5\n", encoding="utf-8")
    proc = run("--config", str(bad), "corpus", "build", str(tmp_path), "-o", str(tmp_path / "out"))
    assert proc.returncode == 2
    assert "unknown key 'eval_fractoin' in section [corpus]" in proc.stderr


def test_a_commands_exit_code_and_ctrl_c_reach_the_exit_status(monkeypatch, capsys):
    import typer

    from app import cli

    app = typer.Typer()

    @app.command()
    def fails() -> None:
        raise typer.Exit(3)  # how `verif-env` reports failed checks and `doctor` a missing grammar

    @app.command()
    def interrupted() -> None:
        raise KeyboardInterrupt

    @app.command()
    def works() -> None:
        pass

    monkeypatch.setattr(cli, "app", app)
    monkeypatch.setattr(cli, "_register", lambda: None)
    assert cli.main(["fails"]) == 3
    assert cli.main(["works"]) == 0
    assert cli.main(["interrupted"]) == 130
    assert "inhouse: interrupted" in capsys.readouterr().err


def test_the_libraries_usage_reports_are_off_unless_the_environment_says(monkeypatch, capsys):
    """MLflow, Ray and the Hugging Face hub would report usage to their vendors: off for inhouse and what it
    starts (Ray workers, an MLflow client), an admin's own setting kept."""
    import os

    from app.cli import main
    from core.usage import NO_USAGE_REPORTS

    for key in NO_USAGE_REPORTS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("DO_NOT_TRACK", "0")
    assert main(["version"]) == 0
    assert os.environ["MLFLOW_DISABLE_TELEMETRY"] == "true" and os.environ["RAY_USAGE_STATS_ENABLED"] == "0"
    assert os.environ["HF_HUB_DISABLE_TELEMETRY"] == "1" and os.environ["DO_NOT_TRACK"] == "0"
    assert capsys.readouterr().out.startswith("inhouse ")
