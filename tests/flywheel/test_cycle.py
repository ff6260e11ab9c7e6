"""The cycle's orchestration against a scripted `inhouse`: which stages run, in what order, what a crash in a
stage re-runs, the lock, and each way a cycle ends. The real commands run in tests/e2e/test_flywheel.py."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from core.errors import ConfigError, StageError
from flywheel.config import CycleConfig
from flywheel.cycle import run_cycle
from flywheel.state import Stage, TeamFolder


def git(repo: Path, *args: str, when: str = "2026-11-01T12:00:00+00:00") -> None:
    env = {**os.environ, "GIT_AUTHOR_DATE": when, "GIT_COMMITTER_DATE": when, "GIT_AUTHOR_NAME": "t",
           "GIT_AUTHOR_EMAIL": "t@localhost", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@localhost"}
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, env=env)


class FakeInhouse:
    """Answers the commands a cycle runs, writing the outputs the real ones write; `fail` makes one command
    fail once (like a stage killed half-way), `eligible`, `decisions` and `eval_rows` script the verdicts."""

    show_progress = False

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.fail: set[str] = set()
        self.eligible = True
        self.eval_rows = 50
        self.decisions: list[str] = []
        self.pairs = 0
        self.versions: list[dict[str, Any]] = []
        self.canary: dict[str, Any] | None = None

    def run(self, args, log: Path, *, want_json: bool = False) -> Any:
        args = [str(a) for a in args]
        self.calls.append(args)
        key = " ".join(args[:2]) if args[0] in ("adapters", "corpus") else args[0]
        if args[:2] == ["adapters", "canary"]:
            key = " ".join(args[:3])
        if key in self.fail:
            self.fail.discard(key)
            raise StageError(f"`inhouse {key}` failed (exit 1)")
        opt = {args[i]: args[i + 1] for i in range(len(args) - 1) if args[i].startswith("-")}
        if key == "corpus build":
            out = Path(opt["-o"])
            out.mkdir(parents=True)
            (out / "manifest.json").write_text(json.dumps({"counts": {
                "rows_train": {"python": 100}, "rows_dev": {"python": 10}, "rows_eval": {"python": self.eval_rows}},
                "cache": {"files_processed": 2, "files_cached": 8}}))
        elif key == "train":
            out = Path(opt["-o"])
            out.mkdir(parents=True, exist_ok=True)
            (out / "inhouse.json").write_text(json.dumps({"kind": "adapter", "steps": 5, "dev_loss": 1.5}))
        elif key == "eval":
            out = Path(opt["-o"])
            out.mkdir(parents=True, exist_ok=True)
            (out / "report.json").write_text(json.dumps({"gate": {
                "eligible": self.eligible, "against": "incumbent" if "--incumbent" in args else "base",
                "rule": {"gate_rule": "not_worse"}, "reasons": [{"metric": "exact_match", "verdict": "ok"}]}}))
        elif key == "admin":  # admin suggestions export
            Path(opt["--out"]).write_text("")
            return {"pairs": self.pairs}
        elif key == "dpo":
            out = Path(opt["-o"])
            out.mkdir(parents=True, exist_ok=True)
            (out / "inhouse.json").write_text(json.dumps({"kind": "adapter", "method": "dpo"}))
        elif key == "adapters register":
            n = len(self.versions) + 1
            row = {"ref": f"{args[2]}/{args[3]}@{n}", "adapter_id": f"{args[2]}.{args[3]}.v{n}", "version": n,
                   "state": "candidate", "name": args[3]}
            self.versions.append(row)
            return row
        elif key == "adapters list":
            return {"versions": self.versions}
        elif key == "adapters show":
            return next(v for v in self.versions if v["ref"] == args[2])
        elif key == "adapters refuse":
            self._set(args[2], "refused")
        elif key == "adapters promote":
            self._promote(args[2])
        elif key == "adapters canary start":
            self.canary = {"ref": args[3], "active": True}
            self._set(args[3], "canary")
            return {"canary": self.canary}
        elif key == "adapters canary decide":
            decision = self.decisions.pop(0) if self.decisions else "wait"
            if decision == "promote" and "--apply" in args:
                self._promote(self.canary["ref"])
            return {"decision": decision, "reason": f"scripted {decision}", "arms": {"current": {}, "candidate": {}}}
        return {} if want_json else ""

    def _set(self, ref: str, state: str) -> None:
        next(v for v in self.versions if v["ref"] == ref)["state"] = state

    def _promote(self, ref: str) -> None:
        for v in self.versions:
            if v["state"] == "current":
                v["state"] = "retired"
        self._set(ref, "current")

    def commands(self) -> list[str]:
        return [" ".join(c[:3]) if c[0] == "adapters" else c[0] for c in self.calls]


@pytest.fixture
def setup(tmp_path: Path):
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "a.py").write_text("x = 1\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "one")
    (tmp_path / "repos.toml").write_text('[[repo]]\npath = "repo"\nteam = "red"\n\n[[repo]]\npath = "repo"\n'
                                         'name = "other"\nteam = "blue"\n')
    cfg = CycleConfig(state_dir=str(tmp_path / "state"), base=str(tmp_path / "base"),
                      repos=str(tmp_path / "repos.toml"), serve_dir=str(tmp_path / "served"),
                      canary_minutes=60, min_exam_rows=20)
    return cfg, repo


def test_first_cycle_promotes_without_canary_and_a_second_needs_new_commits(setup) -> None:
    cfg, repo = setup
    fake = FakeInhouse()
    result = run_cycle(cfg, "red", fake)
    assert result.outcome == "promoted", result.message
    assert fake.commands() == ["corpus", "adapters list red", "train", "adapters list red", "eval",
                               "adapters register red", "adapters list red", "adapters promote red/main@1"]
    train = next(c for c in fake.calls if c[0] == "train")
    assert "--init-adapter" not in train  # nothing to continue from yet
    corpus = next(c for c in fake.calls if c[0] == "corpus")
    assert corpus[corpus.index("--eval-since") + 1] == "2026-10-02T12:00:00+00:00"  # 30 days before the commit
    repos = (TeamFolder(cfg.state_dir, "red").cycle_dir(result.cycle_id) / "repos.toml").read_text()
    assert 'team = "red"' in repos and "other" not in repos
    report = TeamFolder(cfg.state_dir, "red").cycle_dir(result.cycle_id) / "report.md"
    assert "outcome: **promoted**" in report.read_text()

    again = run_cycle(cfg, "red", FakeInhouse())
    assert again.outcome == "nothing_changed"


def test_second_cycle_continues_the_current_adapter_cuts_the_exam_at_its_commit_and_canaries(setup) -> None:
    cfg, repo = setup
    fake = FakeInhouse()
    first = run_cycle(cfg, "red", fake)
    (repo / "a.py").write_text("x = 2\n")
    git(repo, "commit", "-qam", "two", when="2026-11-05T08:00:00+00:00")
    fake.calls.clear()
    result = run_cycle(cfg, "red", fake)
    assert result.outcome == "waiting"  # the canary runs; the cycle stays open
    corpus = next(c for c in fake.calls if c[0] == "corpus")
    assert corpus[corpus.index("--eval-since") + 1] == "2026-11-01T12:00:00+00:00"  # the promoted cycle's commit
    train = next(c for c in fake.calls if c[0] == "train")
    assert train[train.index("--init-adapter") + 1].endswith("red.main.v1")
    exam = next(c for c in fake.calls if c[0] == "eval")
    assert exam[exam.index("--incumbent") + 1].endswith("red.main.v1")
    assert fake.canary == {"ref": "red/main@2", "active": True}
    assert TeamFolder(cfg.state_dir, "red").open_cycle().id == result.cycle_id != first.cycle_id

    fake.calls.clear()
    still = run_cycle(cfg, "red", fake)  # cron again: only the canary's rule is asked
    assert still.outcome == "waiting" and fake.commands() == ["adapters show red/main@2", "adapters canary decide"]
    fake.decisions = ["promote"]
    done = run_cycle(cfg, "red", fake)
    assert done.outcome == "promoted" and done.cycle_id == result.cycle_id
    assert [v["state"] for v in fake.versions] == ["retired", "current"]
    assert TeamFolder(cfg.state_dir, "red").open_cycle() is None
    assert [h["outcome"] for h in TeamFolder(cfg.state_dir, "red").history()] == ["promoted", "promoted"]


def test_a_refused_candidate_is_recorded_and_goes_no_further(setup) -> None:
    cfg, _ = setup
    fake = FakeInhouse()
    fake.eligible = False
    result = run_cycle(cfg, "red", fake)
    assert result.outcome == "refused"
    assert fake.versions[0]["state"] == "refused"
    assert "adapters promote" not in " ".join(fake.commands())


def test_too_few_fresh_exam_rows_end_the_cycle_before_training(setup) -> None:
    cfg, _ = setup
    fake = FakeInhouse()
    fake.eval_rows = 3
    result = run_cycle(cfg, "red", fake)
    assert result.outcome == "no_exam" and "3 fresh exam rows" in result.message
    assert fake.commands() == ["corpus"]


@pytest.mark.parametrize("stage", ["corpus build", "train", "eval", "adapters register", "adapters promote"])
def test_a_failed_stage_is_re_run_alone_by_the_next_run(setup, stage: str) -> None:
    cfg, _ = setup
    fake = FakeInhouse()
    fake.fail = {stage}
    with pytest.raises(StageError):
        run_cycle(cfg, "red", fake)
    before = len(fake.calls)
    result = run_cycle(cfg, "red", fake)
    assert result.outcome == "promoted"
    rerun = fake.commands()[before:]
    first = stage.split()[0]
    assert first in rerun[0] or rerun[0].startswith("adapters list")  # it resumes at the failed stage
    assert fake.commands().count("corpus") == (2 if stage == "corpus build" else 1)
    assert fake.commands().count("train") == (2 if stage == "train" else 1)
    assert len(fake.versions) == 1  # register is idempotent, never a second version


def test_a_second_cycle_while_one_runs_does_nothing(setup) -> None:
    cfg, _ = setup
    folder = TeamFolder(cfg.state_dir, "red")
    entered, release = threading.Event(), threading.Event()

    def hold() -> None:
        with folder.lock() as held:
            assert held
            entered.set()
            release.wait(10)

    t = threading.Thread(target=hold)
    t.start()
    entered.wait(10)
    try:
        fake = FakeInhouse()
        result = run_cycle(cfg, "red", fake)
        assert result.outcome == "locked" and fake.calls == []
    finally:
        release.set()
        t.join()


def test_until_stops_after_a_stage_and_the_cycle_resumes_there(setup) -> None:
    cfg, _ = setup
    fake = FakeInhouse()
    stopped = run_cycle(cfg, "red", fake, until=Stage.CORPUS)
    assert stopped.outcome == "stopped" and fake.commands() == ["corpus"]
    result = run_cycle(cfg, "red", fake)
    assert result.outcome == "promoted" and fake.commands().count("corpus") == 1


def test_bad_config_names_what_is_wrong(setup, tmp_path: Path) -> None:
    cfg, _ = setup
    with pytest.raises(ConfigError, match="no \\[\\[repo\\]\\] has team = 'green'.*blue.*red"):
        run_cycle(cfg, "green", FakeInhouse())
    with pytest.raises(ConfigError, match="`base`"):
        run_cycle(CycleConfig(repos=cfg.repos, serve_dir=cfg.serve_dir), "red", FakeInhouse())
    with pytest.raises(ConfigError, match="`canary_policy` must be one of"):
        CycleConfig(canary_policy="sometimes")
    with pytest.raises(ConfigError, match="`eval_since` must be an ISO date"):
        CycleConfig(eval_since="last week")


def test_dpo_tunes_the_candidate_on_stored_pairs_and_the_gate_judges_the_result(setup) -> None:
    import dataclasses

    cfg, _ = setup
    cfg = dataclasses.replace(cfg, dpo=True, dpo_min_pairs=10)
    few = FakeInhouse()
    few.pairs = 3
    result = run_cycle(cfg, "red", few)
    assert result.outcome == "promoted" and "dpo" not in few.commands()
    assert "fewer than dpo_min_pairs=10" in result.state["stages"]["dpo"]["skipped"]

    cfg = dataclasses.replace(cfg, state_dir=cfg.state_dir + "-2")
    many = FakeInhouse()
    many.pairs = 40
    result = run_cycle(cfg, "red", many)
    dpo = next(c for c in many.calls if c[0] == "dpo")
    assert dpo[dpo.index("--adapter") + 1].endswith("candidate")
    exam = next(c for c in many.calls if c[0] == "eval")
    register = next(c for c in many.calls if c[:2] == ["adapters", "register"])
    for call in (exam, register):
        assert call[call.index("--adapter") + 1].endswith("candidate-dpo")
    assert result.state["stages"]["dpo"]["pairs"] == 40
