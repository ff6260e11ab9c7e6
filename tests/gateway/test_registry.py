"""The adapter registry: `inhouse adapters register` is idempotent and atomic (a kill -9 between copy and insert,
or in the middle of the copy, leaves nothing a model server lists half-written, and the re-run is clean);
promote and rollback from another process govern the very next request through a running gateway, with the
token cache at an hour; states, refusals, diff and errors."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap

import httpx
import pytest
import typer
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import cli
from gateway import adapter_files
from gateway.accounts import Accounts
from gateway.audit import rows as audit_rows
from gateway.db import open_database
from gateway.models import Adapter, Team, TeamAdapter
from gateway.registry import Registry
from gateway.registry_cli import app as adapters_app
from server.adapters import AdapterDirectory
from tests.gateway.registry_helpers import REPO, cli_process, fake_upstream, make_adapter_dir


@pytest.fixture
def adapters_cli(monkeypatch, tmp_path, capsys):
    """adapters_cli(*args) -> (exit code, parsed JSON or None, stderr) of `inhouse adapters ARGS --db ... --json`,
    in this process."""
    root = typer.Typer()
    root.add_typer(adapters_app, name="adapters")
    monkeypatch.setattr(cli, "app", root)
    monkeypatch.setattr(cli, "_register", lambda: None)
    db = f"sqlite:///{tmp_path / 'g.db'}"

    def run(*args: str) -> tuple[int, dict | None, str]:
        code = cli.main(["adapters", *args, "--db", db, "--json"])
        out = capsys.readouterr()
        return code, json.loads(out.out) if code == 0 else None, out.err

    run.db = db  # type: ignore[attr-defined]
    return run


def test_register_twice_gives_one_version(adapters_cli, tmp_path):
    serve = tmp_path / "serve"
    serve.mkdir()
    Accounts(open_database(adapters_cli.db)).add_team("red")
    a1 = make_adapter_dir(tmp_path / "out1", seed=1)
    a2 = make_adapter_dir(tmp_path / "out2", seed=2, data="e" * 64)
    (tmp_path / "report.json").write_text(json.dumps({"runs": {
        "base/psm": {"overall": {"exact_match": 0.1, "edit_similarity": 0.3}},
        "tuned/psm": {"overall": {"exact_match": 0.25, "edit_similarity": 0.5}}},
        "headline": {"base_best_mode": "base/psm", "tuned_mode": "tuned/psm"}, "n": 8}))
    args = ("register", "red", "coder", "--adapter", str(a1), "--serve-dir", str(serve))
    code, first, err = adapters_cli(*args, "--report", str(tmp_path / "report.json"), "--reason", "nightly")
    assert code == 0, err
    assert first == {"ref": "red/coder@1", "adapter_id": "red.coder.v1", "version": 1, "state": "candidate",
                     "created": True}
    code, again, _ = adapters_cli(*args)
    assert again == {**first, "created": False}
    code, second, _ = adapters_cli("register", "red", "coder", "--adapter", str(a2), "--serve-dir", str(serve))
    assert (second["ref"], second["adapter_id"], second["created"]) == ("red/coder@2", "red.coder.v2", True)
    # the servers see exactly the two versions, each holding the adapter's top-level files (no checkpoints)
    assert AdapterDirectory(serve).ids() == ["red.coder.v1", "red.coder.v2"]
    assert sorted(p.name for p in serve.iterdir()) == ["red.coder.v1", "red.coder.v2"]
    assert sorted(p.name for p in (serve / "red.coder.v1").iterdir()) == sorted(
        p.name for p in a1.iterdir() if p.is_file())
    assert adapter_files.content_sha256(serve / "red.coder.v1") == adapter_files.content_sha256(a1)
    code, listed, _ = adapters_cli("list", "red")
    assert [(v["ref"], v["state"]) for v in listed["versions"]] == [("red/coder@1", "candidate"),
                                                                    ("red/coder@2", "candidate")]
    v1 = listed["versions"][0]
    assert v1["data_sha256"] == "d" * 64 and v1["base_model"] == "models/smollm2" and v1["git_sha"] == "abc1"
    assert v1["profile"]["max_prompt_tokens"] == 1025 and v1["reason"] == "nightly"
    assert v1["exam"]["tuned"]["em"] == 0.25
    # the gateway knows both adapters, and the team may use them
    engine = open_database(adapters_cli.db)
    with Session(engine) as s:
        assert sorted(s.scalars(select(Adapter.name))) == ["red.coder.v1", "red.coder.v2"]
        red = s.scalar(select(Team).where(Team.name == "red"))
        assert sorted(s.scalars(select(TeamAdapter.adapter).where(TeamAdapter.team_id == red.id))) == [
            "red.coder.v1", "red.coder.v2"]
    admin_rows = [r for r in audit_rows(engine, kind="admin") if r["route"].startswith("registry.")]
    assert [json.loads(r["detail"])["ref"] for r in admin_rows] == ["red/coder@2", "red/coder@1"]


KILLER = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from gateway import adapter_files, registry
    from gateway.db import open_database

    mode, db, adapter, serve = sys.argv[1:5]
    if mode == "after-copy":  # the files are in place under their id; the row is never written
        registry.Registry._insert = lambda self, row: os.kill(os.getpid(), signal.SIGKILL)
    else:  # killed in the middle of the copy, after its second file
        real, done = adapter_files.copy_file, []

        def copy(src, dst):
            real(src, dst)
            done.append(dst)
            if len(done) == 2:
                os.kill(os.getpid(), signal.SIGKILL)

        adapter_files.copy_file = copy
    registry.Registry(open_database(db)).register("red", "coder", Path(adapter), Path(serve))
    print("not killed")
""")


@pytest.mark.parametrize("mode", ["during-copy", "after-copy"])
def test_kill_between_copy_and_insert_then_rerun_is_clean(tmp_path, mode):
    serve = tmp_path / "serve"
    serve.mkdir()
    db = f"sqlite:///{tmp_path / 'g.db'}"
    adapter = make_adapter_dir(tmp_path / "out", seed=3, extra_files=6)
    proc = subprocess.run([sys.executable, "-c", KILLER, mode, db, str(adapter), str(serve)], cwd=REPO,
                          capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin"})
    assert proc.returncode == -signal.SIGKILL, proc.stdout + proc.stderr
    registry = Registry(open_database(db))
    assert registry.versions() == []  # no row, so nothing routes to a missing or half-copied adapter
    listed = AdapterDirectory(serve).ids()
    if mode == "during-copy":
        assert listed == []  # the partial copy is hidden from the servers
        assert [p.name for p in adapter_files.leftovers(serve, "red.coder.v1")] != []
    else:
        assert listed == ["red.coder.v1"]  # complete (renamed whole); the registry does not know it yet
        assert adapter_files.content_sha256(serve / "red.coder.v1") == adapter_files.content_sha256(adapter)
    again = registry.register("red", "coder", adapter, serve)
    assert (again["ref"], again["created"]) == ("red/coder@1", True)
    assert sorted(p.name for p in serve.iterdir()) == ["red.coder.v1"]  # leftovers gone, one complete copy
    assert adapter_files.content_sha256(serve / "red.coder.v1") == again["content_sha256"]
    assert registry.register("red", "coder", adapter, serve)["created"] is False


def test_a_foreign_directory_under_the_id_is_refused_untouched(tmp_path):
    serve = tmp_path / "serve"
    serve.mkdir()
    (serve / "red.coder.v1").mkdir()
    (serve / "red.coder.v1" / "adapter_config.json").write_text("{}")
    registry = Registry(open_database(f"sqlite:///{tmp_path / 'g.db'}"))
    with pytest.raises(Exception, match="already exists with other content"):
        registry.register("red", "coder", make_adapter_dir(tmp_path / "out", seed=1), serve)
    assert registry.versions() == [] and (serve / "red.coder.v1" / "adapter_config.json").read_text() == "{}"


def _generate(http: httpx.Client, url: str, token: str) -> str:
    r = http.post(f"{url}/generate", json={"inputs": "x", "parameters": {"max_new_tokens": 1}},
                  headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    return r.json()["generated_text"]


def test_promote_and_rollback_from_another_process_govern_the_next_request(gateway_server, tmp_path):
    serve = tmp_path / "serve"
    serve.mkdir()
    with fake_upstream(serve) as upstream:
        # tokens trusted for an hour (routing is not), upstreams checked once an hour: a version registered after
        # the gateway started is found when a request is routed to it
        url, app = gateway_server((upstream,), auth_cache_s=3600.0, health_interval_s=3600.0)
        gw = app.state.gateway
        db = gw.cfg.database_url
        a: Accounts = gw.accounts
        a.add_team("red")
        a.add_user("alice")
        a.add_member("red", "alice")
        token = a.create_token("alice")
        registry = Registry(gw.engine)
        for seed in (1, 2):
            registry.register("red", "coder", make_adapter_dir(tmp_path / f"out{seed}", seed=seed), serve)
        assert gw.pool.adapters() == set()
        with httpx.Client(timeout=30) as http:
            assert _generate(http, url, token) == "base"  # no current version yet: the base model
            out = cli_process("promote", "red/coder@1", db=db)
            assert (out["ref"], out["state"], out["previous"]) == ("red/coder@1", "current", None)
            assert _generate(http, url, token) == "red.coder.v1"
            out = cli_process("promote", "red/coder@2", db=db)
            assert out["previous"]["ref"] == "red/coder@1"
            assert _generate(http, url, token) == "red.coder.v2"
            info = http.get(f"{url}/info", headers={"Authorization": f"Bearer {token}"}).json()
            assert info["default_adapter"] == "red.coder.v2"
            out = cli_process("rollback", "red", db=db)
            assert (out["rolled_back"]["ref"], out["current"]["ref"]) == ("red/coder@2", "red/coder@1")
            assert _generate(http, url, token) == "red.coder.v1"
            out = cli_process("rollback", "red", db=db)  # v1 replaced nothing: back to the base model
            assert out["current"] is None
            assert _generate(http, url, token) == "base"
            registry.promote("red/coder@1")
            assert _generate(http, url, token) == "red.coder.v1"
            out = cli_process("rollback", "red", "--to", "red/coder@2", db=db)
            assert out["current"]["ref"] == "red/coder@2"
            assert _generate(http, url, token) == "red.coder.v2"
        gw.audit.flush()
    served = [r["adapter"] for r in reversed(audit_rows(gw.engine, kind="request")) if r["route"] == "/generate"]
    assert served == [None, "red.coder.v1", "red.coder.v2", "red.coder.v1", None, "red.coder.v1", "red.coder.v2"]
    states = {v["ref"]: v["state"] for v in registry.versions("red")}
    assert states == {"red/coder@1": "rolled_back", "red/coder@2": "current"}
    with Session(gw.engine) as s:
        assert s.scalar(select(Team.default_adapter).where(Team.name == "red")) == "red.coder.v2"
    changes = [json.loads(r["detail"]) for r in reversed(audit_rows(gw.engine, kind="admin"))
               if r["route"] in ("registry.promote", "registry.rollback")]
    assert [(c["ref"], c["from"], c["to"]) for c in changes][:3] == [
        ("red/coder@1", "candidate", "current"), ("red/coder@1", "current", "retired"),
        ("red/coder@2", "candidate", "current")]


def test_refuse_show_diff_and_clear_errors(adapters_cli, tmp_path):
    serve = tmp_path / "serve"
    serve.mkdir()
    Accounts(open_database(adapters_cli.db)).add_team("red")
    for seed, data in ((1, "d" * 64), (2, "e" * 64), (3, "d" * 64)):
        adapters_cli("register", "red", "coder", "--adapter", str(make_adapter_dir(tmp_path / f"o{seed}", seed=seed,
                                                                                    data=data)),
                     "--serve-dir", str(serve))
    code, out, _ = adapters_cli("refuse", "red/coder@3", "--reason", "exact match below the current's")
    assert code == 0 and out["state"] == "refused"
    code, _, err = adapters_cli("promote", "red/coder@3")
    assert code == 2 and "refused by the exam gate (exact match below the current's)" in err
    assert adapters_cli("promote", "red/coder@1")[0] == 0
    code, out, _ = adapters_cli("show", "red/coder")  # team/name: the current version
    assert out["ref"] == "red/coder@1" and out["state"] == "current"
    code, d, _ = adapters_cli("diff", "red/coder@1", "red/coder@2")
    fields = {r["field"]: r for r in d["fields"]}
    assert fields["data_sha256"] == {"field": "data_sha256", "a": "d" * 64, "b": "e" * 64, "differs": True}
    assert fields["base_model"]["differs"] is False
    assert fields["profile.max_prompt_tokens"]["a"] == 1025 and fields["profile.max_prompt_tokens"]["b"] == 1026
    assert {"data_sha256", "git_sha", "profile.max_prompt_tokens", "content_sha256", "state"} <= set(d["differs"])
    for args, message in (
            (("register", "red.x", "coder", "--adapter", str(tmp_path / "o1"), "--serve-dir", str(serve)),
             "`team` must be 1-32 letters"),
            (("register", "red", "coder", "--adapter", str(tmp_path), "--serve-dir", str(serve)),
             "holds no adapter_config.json"),
            (("show", "red/coder@9"), "no version 'red/coder@9'"),
            (("show", "red-coder"), "a version is named `team/name@N`"),
            (("rollback", "blue"), "team 'blue' has no current version"),
            (("canary", "start", "red/coder@1"), "only a candidate can go to canary; red/coder@1 is current"),
            (("canary", "stop", "red", "--promote"), "team 'red' has no canary running"),
            (("canary", "stop", "red"), "needs --promote or --rollback")):
        code, _, err = adapters_cli(*args)
        assert code == 2 and message in err and "Traceback" not in err, (args, err)
