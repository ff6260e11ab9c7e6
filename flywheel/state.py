"""A team's flywheel folder: the lock that keeps two cycles apart, the open cycle's state, and the history.

    STATE_DIR/TEAM/
      lock                      flock'ed by the running cycle (cron, a timer and an admin may all start one)
      open                      the id of the cycle in progress (absent: none)
      cycles/ID/state.json      stages done, their results and minutes; rewritten atomically after each stage
      cycles/ID/...             repos.toml, dataset/, candidate/, exam/, logs/, report.json, report.md
      corpus-cache/             the corpus builder's per-file cache (by git blob id), shared by all cycles
      history.jsonl             one line per finished cycle

A stage is recorded as done only after its command has finished and its outputs are in place, so a cycle killed
at any moment re-runs at most the stage it was in.
"""

from __future__ import annotations

import contextlib
import datetime
import enum
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.artifacts import write_json_atomic
from core.errors import ConfigError


class Stage(str, enum.Enum):
    SNAPSHOT = "snapshot"
    CORPUS = "corpus"
    TRAIN = "train"
    DPO = "dpo"
    GATE = "gate"
    REGISTER = "register"
    CANARY = "canary"
    DECIDE = "decide"


STAGES: tuple[Stage, ...] = tuple(Stage)


class Outcome(str, enum.Enum):
    PROMOTED = "promoted"  # the candidate is the team's current adapter
    ROLLED_BACK = "rolled_back"  # the canary refused it; the previous adapter serves again
    REFUSED = "refused"  # the exam gate refused it
    NO_EXAM = "no_exam"  # too few fresh held-out rows to judge a candidate
    WAITING = "waiting"  # the canary runs (or waits for an admin); a later run decides


def now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


@dataclass
class CycleState:
    id: str
    team: str
    started: str
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)
    outcome: str | None = None
    finished: str | None = None

    def done(self, stage: Stage) -> bool:
        return self.stages.get(stage.value, {}).get("status") == "done"

    def result(self, stage: Stage) -> dict[str, Any]:
        return self.stages.get(stage.value, {})

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "team": self.team, "started": self.started, "stages": self.stages,
                "outcome": self.outcome, "finished": self.finished}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CycleState:
        return cls(id=data["id"], team=data["team"], started=data["started"], stages=dict(data.get("stages", {})),
                   outcome=data.get("outcome"), finished=data.get("finished"))


class TeamFolder:
    def __init__(self, state_dir: str | os.PathLike[str], team: str) -> None:
        self.root = Path(state_dir) / team
        self.team = team

    @property
    def cache(self) -> Path:
        return self.root / "corpus-cache"

    def cycle_dir(self, cycle_id: str) -> Path:
        return self.root / "cycles" / cycle_id

    @contextlib.contextmanager
    def lock(self) -> Iterator[bool]:
        """Yield True holding the team's lock, or False when another cycle holds it (the caller says so and
        exits cleanly: a cron job that finds the previous one still running is not an error)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / "lock", "a+", encoding="utf-8") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            fh.seek(0)
            fh.truncate()
            fh.write(f"{os.getpid()}\n")
            fh.flush()
            try:
                yield True
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def holder(self) -> str:
        with contextlib.suppress(OSError):
            return (self.root / "lock").read_text(encoding="utf-8").strip() or "?"
        return "?"

    def open_cycle(self) -> CycleState | None:
        marker = self.root / "open"
        if not marker.is_file():
            return None
        cycle_id = marker.read_text(encoding="utf-8").strip()
        return self.load(cycle_id)

    def load(self, cycle_id: str) -> CycleState:
        path = self.cycle_dir(cycle_id) / "state.json"
        try:
            return CycleState.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError, KeyError) as exc:
            raise ConfigError(f"cycle state {str(path)!r} is unreadable ({exc}); move the cycle folder away to "
                              "start a new cycle") from exc

    def new_id(self, stamp: str) -> str:
        """The cycle id for a start at `stamp`, suffixed when a cycle already started within that second."""
        cycle_id, n = stamp, 1
        while self.cycle_dir(cycle_id).exists():
            n += 1
            cycle_id = f"{stamp}-{n}"
        return cycle_id

    def begin(self, cycle_id: str) -> CycleState:
        state = CycleState(id=cycle_id, team=self.team, started=now_iso())
        self.save(state)
        marker = self.root / "open"
        tmp = marker.with_name(".open.tmp")
        tmp.write_text(cycle_id + "\n", encoding="utf-8")
        os.replace(tmp, marker)
        return state

    def save(self, state: CycleState) -> None:
        write_json_atomic(self.cycle_dir(state.id) / "state.json", state.to_dict())

    def close(self, state: CycleState) -> None:
        """Record the finished cycle in the history, then clear the open marker (in that order: a kill between
        the two re-closes the same cycle, and the history keeps one line per cycle id)."""
        history = self.root / "history.jsonl"
        seen = {row.get("id") for row in self.history()}
        if state.id not in seen:
            with open(history, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(summary(state), sort_keys=True) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
        with contextlib.suppress(FileNotFoundError):
            (self.root / "open").unlink()

    def history(self) -> list[dict[str, Any]]:
        path = self.root / "history.jsonl"
        if not path.is_file():
            return []
        rows = []
        for line in path.read_text(encoding="utf-8").splitlines():
            with contextlib.suppress(json.JSONDecodeError):  # a line cut by a kill is not a cycle
                rows.append(json.loads(line))
        return rows


def summary(state: CycleState) -> dict[str, Any]:
    snap = state.result(Stage.SNAPSHOT)
    return {"id": state.id, "team": state.team, "started": state.started, "finished": state.finished,
            "outcome": state.outcome, "heads": snap.get("heads", {}), "newest_commit": snap.get("newest_commit"),
            "candidate": state.result(Stage.REGISTER).get("ref"),
            "minutes": {k: v.get("minutes") for k, v in state.stages.items() if "minutes" in v}}
