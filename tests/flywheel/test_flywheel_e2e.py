"""The flywheel end to end on the tiny model, every stage the real `inhouse` command: three cycles on a
repository that gains commits between them, scripted users through a real gateway in front of a real model
server, a rollback, and a cycle killed with SIGKILL in each stage.

- Cycle 1: the first adapter; no current one, so the gate compares it with the base and it is promoted at once.
- Cycle 2 (after a commit changing 3 files): the corpus re-processes only those; training continues from
  red/main@1; the gate compares with it; the canary sends half the team's users to @2; the users complete and
  accept or dismiss through the gateway; the next run's rule promotes @2.
- Cycle 3 (after another commit, `--init fresh`): its training rows are the same rows with every middle swapped
  for another row's: a deliberately worse candidate, which the gate refuses.
- `inhouse adapters rollback red`: the next request through the gateway gets red/main@1 again.

The tiny random model learns the corpus builder's spans too slowly to tell a good adapter from a bad one in a
test's seconds, so each cycle trains and sits the exam on rows of the fixture's template
(tests/finetune/flywheel_fixtures.py): the corpus stage runs for real (`--until corpus`; its incremental counts
are checked), then the test puts those rows in the cycle's dataset folder and the cycle resumes at train.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.finetune.flywheel_fixtures import (
    TINY_TRAIN,
    commit_files,
    corpus_files,
    make_repo,
    make_tiny_dataset,
    make_tiny_model,
    shuffle_middles,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
USERS = [f"u{i:02d}" for i in range(12)]


def _toml(value) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, bool):
        return str(value).lower()
    return json.dumps(value) if isinstance(value, str) else str(value)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The tiny model, the team's repository (24 files, then commits), repos.toml, the config, the gateway's
    database with team red and its users, and the rows the judged cycles use."""
    root = tmp_path_factory.mktemp("flywheel")
    model = make_tiny_model(root / "model")
    repo = make_repo(root / "repo", files=24, date="2026-09-01T12:00:00+00:00")
    # changed within first_eval_days of the newest commit: the first cycle's exam
    commit_files(repo, dict(list(corpus_files(4, 100).items())), "new files", "2026-10-20T12:00:00+00:00")
    (root / "repos.toml").write_text('[[repo]]\nname = "acme"\npath = "repo"\nteam = "red"\n', encoding="utf-8")
    db = f"sqlite:///{root / 'gateway.db'}"
    train = {k: v for k, v in TINY_TRAIN.items() if k != "log_every"}
    lines = ["[train]"] + [f"{k} = {_toml(v)}" for k, v in train.items()]
    lines += ["", "[eval]", "bootstrap = 400", "threads = 1", "", "[gateway]", f"database_url = {_toml(db)}", "",
              "[cycle]",
              f"state_dir = {_toml(str(root / 'flywheel'))}", f"base = {_toml(str(model))}",
              f"repos = {_toml(str(root / 'repos.toml'))}", f"serve_dir = {_toml(str(root / 'served'))}",
              f"database_url = {_toml(db)}", "train_minutes = 10", "exam_limit = 0", "min_exam_rows = 1",
              "canary_share = 0.5", "canary_minutes = 0.4", "canary_policy = \"auto\"", "canary_min_shown = 2"]
    (root / "inhouse.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (root / "served").mkdir()

    from gateway.accounts import Accounts
    from gateway.db import open_database

    accounts = Accounts(open_database(db), actor="test")
    accounts.add_team("red")
    tokens = {}
    for user in USERS:
        accounts.add_user(user)
        accounts.add_member("red", user)
        tokens[user] = accounts.create_token(user)
    good = make_tiny_dataset(root / "good-rows", seed=0)
    return {"root": root, "model": model, "repo": repo, "db": db, "tokens": tokens, "good": good}


def inhouse(world, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "app.cli", "--config", str(world["root"] / "inhouse.toml"), *args]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


def cycle(world, *args: str) -> dict:
    proc = inhouse(world, "cycle", "red", "--json", "--no-progress", *args)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def registry(world) -> dict[str, dict]:
    out = json.loads(inhouse(world, "adapters", "list", "red", "--json").stdout)
    return {v["ref"]: v for v in out["versions"]}


def put_rows(world, result: dict, rows: Path) -> None:
    """Replace the open cycle's dataset by `rows` (the corpus stage has run; the cycle resumes at train)."""
    dataset = world["root"] / "flywheel" / "red" / "cycles" / result["cycle"] / "dataset"
    shutil.rmtree(dataset)
    shutil.copytree(rows, dataset)


def test_three_cycles_canary_refusal_and_rollback(world) -> None:
    # ---- cycle 1: first adapter, gate against the base, promoted at once -------------------------------------
    stopped = cycle(world, "--until", "corpus")
    assert stopped["outcome"] == "stopped"
    corpus1 = stopped["state"]["stages"]["corpus"]
    assert corpus1["cache"]["files_processed"] == 28 and corpus1["rows"]["eval"] > 0  # a cold cache
    put_rows(world, stopped, world["good"])
    first = cycle(world)
    assert first["outcome"] == "promoted", first["message"]
    gate1 = first["state"]["stages"]["gate"]
    assert gate1["eligible"] and gate1["against"] == "base"
    em = next(r for r in gate1["reasons"] if r["metric"] == "exact_match")
    assert em["verdict"] == "significantly better", em
    assert registry(world)["red/main@1"]["state"] == "current"
    assert (world["root"] / "served" / "red.main.v1" / "adapter_model.safetensors").is_file()
    assert cycle(world)["outcome"] == "nothing_changed"  # cron again, nothing moved

    # ---- cycle 2: 3 files change; only they are re-processed; continue @1; canary ------------------------------
    changed = {path: text + "\n\nLIMIT = 7\n" for path, text in list(corpus_files(3, 0).items())}
    commit_files(world["repo"], changed, "edit three files", "2026-11-02T09:00:00+00:00")
    stopped = cycle(world, "--until", "corpus")
    put_rows(world, stopped, world["good"])
    second = cycle(world)
    assert second["outcome"] == "waiting", second["message"]
    stages = second["state"]["stages"]
    assert stages["snapshot"]["cutoff"] == "2026-10-20T12:00:00+00:00"  # the newest commit of the promoted cycle
    assert stages["corpus"]["cache"]["files_processed"] == 3, stages["corpus"]["cache"]
    assert stages["train"]["init_adapter"] == "red/main@1"
    assert stages["gate"]["against"] == "incumbent" and stages["gate"]["eligible"], stages["gate"]
    versions = registry(world)
    assert versions["red/main@2"]["state"] == "canary" and versions["red/main@1"]["state"] == "current"

    arms = asyncio.run(scripted_users(world, rows=world["good"]))
    assert set(arms.values()) == {"red.main.v1", "red.main.v2"}, arms  # both arms have users
    early = cycle(world)
    assert early["outcome"] == "waiting" and "period" in early["message"], early["message"]
    status = json.loads(inhouse(world, "adapters", "canary", "status", "red", "--json").stdout)
    assert status["arms"]["candidate"]["shown"] >= 2 and status["arms"]["current"]["shown"] >= 2, status["arms"]
    time.sleep(max(0.0, status["ends_at"] - time.time()) + 0.5)  # the canary's period (24 s) ends
    decided = cycle(world)
    assert decided["outcome"] == "promoted", decided["message"]
    decide = decided["state"]["stages"]["decide"]
    assert decide["decision"] == "promote", decide
    versions = registry(world)
    assert versions["red/main@2"]["state"] == "current" and versions["red/main@1"]["state"] == "retired"
    report = Path(world["root"] / "flywheel" / "red" / "cycles" / decided["cycle"] / "report.md").read_text()
    assert "outcome: **promoted**" in report and "## Canary" in report

    # ---- cycle 3: a deliberately worse candidate (swapped middles) is refused by the gate --------------------
    commit_files(world["repo"], {"acme/late.py": next(iter(corpus_files(1, 200).values()))}, "late",
                 "2026-11-20T09:00:00+00:00")
    stopped = cycle(world, "--until", "corpus")
    put_rows(world, stopped, shuffle_middles(world["good"], world["root"] / "bad-rows"))
    # a fresh LoRA: continued from @2, the trainer's best-on-dev checkpoint (dev middles are true) stays near @2
    third = cycle(world, "--init", "fresh")
    assert third["outcome"] == "refused", third["message"]
    gate3 = third["state"]["stages"]["gate"]
    assert not gate3["eligible"] and gate3["against"] == "incumbent"
    assert any(r["verdict"] == "significantly worse" for r in gate3["reasons"]), gate3["reasons"]
    versions = registry(world)
    assert versions["red/main@3"]["state"] == "refused" and versions["red/main@2"]["state"] == "current"

    # ---- rollback: one command, the next request gets @1 -------------------------------------------------------
    rolled = json.loads(inhouse(world, "adapters", "rollback", "red", "--json").stdout)
    assert rolled["current"]["ref"] == "red/main@1"
    after = asyncio.run(scripted_users(world, rows=world["good"], users=USERS[:2], cursors=1, events=False))
    assert set(after.values()) == {"red.main.v1"}, after


async def scripted_users(world, rows: Path, users: list[str] = USERS, cursors: int = 2,
                         events: bool = True) -> dict[str, str]:
    """Each user completes `cursors` held-out cursors through a gateway in front of `inhouse serve` (the language
    server's session with the user's token), accepts a suggestion equal to the true middle, else dismisses it,
    and reports it as the language server does; returns user -> the adapter the gateway served them."""
    from core.completion.pipeline import CompletionInput
    from finetune import data as D
    from finetune import metrics as M
    from gateway.app import create_app as gateway_app
    from gateway.audit import rows as audit_rows
    from gateway.config import GatewayConfig
    from lsp.config import LspConfig
    from lsp.session import Session
    from server.app import create_app as server_app
    from server.threaded import serve_in_thread

    held_out = [r for r in D.load_rows(rows, "eval")][: cursors * 4]
    since = time.time()
    model_app = server_app(world["model"], world["root"] / "served", threads=1)
    served: dict[str, str] = {}
    try:
        with serve_in_thread(model_app) as upstream:
            gw = gateway_app(GatewayConfig(upstreams=(upstream,), database_url=world["db"], adoption_events=True,
                                           health_interval_s=0.2))
            with serve_in_thread(gw) as url:
                async with httpx.AsyncClient(timeout=30) as http:
                    for n, user in enumerate(users):
                        token = world["tokens"][user]
                        session = Session(LspConfig(gateway_url=url, gateway_token=token,
                                                    tokenizer=str(world["model"]), index_workspace=False))
                        batch = []
                        try:
                            for i in range(cursors):
                                row = held_out[(n + i) % len(held_out)]
                                answer = await session.complete(f"{user}-{i}", CompletionInput(
                                    row["path"], row["prefix"], row["suffix"], "python"))
                                if not answer.text:
                                    continue
                                sid = f"{user}-{i}"
                                batch.append({"kind": "shown", "id": sid, "chars": len(answer.text)})
                                if M.exact_match(answer.text, row["middle"]):
                                    batch += [{"kind": "accepted", "id": sid, "chars": len(answer.text)},
                                              {"kind": "retained", "id": sid, "chars": len(answer.text),
                                               "after_s": 300}]
                                else:
                                    batch.append({"kind": "dismissed", "id": sid})
                        finally:
                            await session.aclose()
                        if events and batch:
                            r = await http.post(f"{url}/v1/events", json={"events": batch},
                                                headers={"Authorization": f"Bearer {token}"})
                            assert r.status_code == 200, r.text
                engine = gw.state.gateway.engine
                deadline = time.monotonic() + 20
                while set(served) != set(users) and time.monotonic() < deadline:  # audit rows land off the path
                    for row in audit_rows(engine, since=since, kind="request"):
                        if row.get("actor") in users and row.get("adapter"):
                            served.setdefault(row["actor"], row["adapter"])
                    time.sleep(0.1)
    finally:
        model_app.state.server.engine.close()
    return served


def test_a_cycle_killed_in_each_stage_resumes_and_the_registry_never_names_a_partial_adapter(world) -> None:
    """SIGKILL to the cycle's process group as soon as each stage has begun; after each kill every registered
    version is a complete folder in serve_dir, and a last run finishes the cycle with one new version."""
    commit_files(world["repo"], {"acme/killed.py": next(iter(corpus_files(1, 300).values()))}, "for the kills",
                 "2026-11-25T09:00:00+00:00")
    state_dir = world["root"] / "flywheel" / "red"
    before = set(registry(world))
    killed_in = []
    for stage in ("corpus", "train", "gate", "register"):
        proc = subprocess.Popen([sys.executable, "-m", "app.cli", "--config", str(world["root"] / "inhouse.toml"),
                                 "cycle", "red", "--no-progress", "--force"], cwd=ROOT, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            state = _open_state(state_dir)
            if state and state["stages"].get(stage, {}).get("status") == "running":
                time.sleep(0.3)  # into the stage's command
                break
            time.sleep(0.02)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            killed_in.append(stage)
        proc.wait(30)
        time.sleep(0.5)  # the stage's children die with it (PR_SET_PDEATHSIG)
        for ref, v in registry(world).items():
            folder = world["root"] / "served" / v["adapter_id"]
            assert (folder / "adapter_model.safetensors").is_file() and (folder / "inhouse.json").is_file(), ref
        visible = {p.name for p in (world["root"] / "served").iterdir() if not p.name.startswith(".")}
        assert visible <= {v["adapter_id"] for v in registry(world).values()} | _unregistered_ok(visible, world)
    assert killed_in == ["corpus", "train", "gate", "register"], killed_in
    final = cycle(world)
    assert final["outcome"] in ("promoted", "refused", "waiting"), final
    new = set(registry(world)) - before
    assert len(new) == 1, new  # re-running register after a kill never made a second version


def _open_state(state_dir: Path) -> dict | None:
    marker = state_dir / "open"
    try:
        cycle_id = marker.read_text().strip()
        return json.loads((state_dir / "cycles" / cycle_id / "state.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _unregistered_ok(visible: set[str], world) -> set[str]:
    """A folder renamed into place by a register killed before its row was written: complete, and reused by the
    next register (the registry's own kill test checks that)."""
    ok = set()
    for name in visible:
        folder = world["root"] / "served" / name
        if (folder / "adapter_model.safetensors").is_file() and (folder / "inhouse.json").is_file():
            ok.add(name)
    return ok
