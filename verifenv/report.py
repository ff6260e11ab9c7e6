"""The acceptance ladder's report: each level's status, each `--fill` outcome, and the claim they support.

`ladder.check` builds it and `fill.fill` adds its outcomes; `write_report` writes reports/check.json and
reports/check.txt.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from core.artifacts import write_json_atomic


class Status(str, Enum):
    """What one level showed; reports write the value (`"pass"`), and it compares equal to it."""

    PASS = "pass"
    FAIL = "fail"  # the check ran and the environment failed it
    ERROR = "error"  # the check could not judge: a timeout, a harness error, no simulator, no coverage report
    NOT_SHOWN = "not_shown"  # the check ran but had nothing to judge (no transfer seen, no mutant counted)
    SKIP = "skip"  # not run: a level below failed, or it was not asked for


@dataclass
class Level:
    level: str
    name: str
    status: Status
    detail: str = ""
    seconds: float = 0.0
    data: dict = field(default_factory=dict)


class MutantOutcome(str, Enum):
    """What one RTL mutant did to the environment's tests (L5); only killed, survived and timeout are counted."""

    KILLED = "killed"  # a test failed: the environment noticed the change
    SURVIVED = "survived"  # every test passed
    TIMEOUT = "timeout"  # the run hung past its wall-clock limit
    STILLBORN = "stillborn"  # the mutant did not build
    ERROR = "error"  # a harness error: never counted as killed


@dataclass(frozen=True)
class MutantResult:
    id: str
    mutation: str  # what was changed, with the file when it is not the top's
    outcome: MutantOutcome
    why: str

    def to_dict(self) -> dict[str, Any]:
        """As reports/check.json holds it."""
        return {"id": self.id, "mutation": self.mutation, "outcome": self.outcome.value, "why": self.why}


class FillStatus(str, Enum):
    """What became of one owned file's holes; reports write the value."""

    ACCEPTED = "accepted"  # the model's fill passed the ladder and is kept
    REJECTED = "rejected"  # no round passed: the generated text is restored
    KEPT = "kept"  # not filled: its holes were edited by hand


@dataclass(frozen=True)
class FillItem:
    """One owned file of `--fill`: its outcome, the rounds it took and why, round by round."""

    file: str  # relative to the environment, e.g. tb/ref_model.py
    status: FillStatus
    rounds: int
    reasons: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """As reports/check.json holds it."""
        return {"file": self.file, "status": self.status.value, "rounds": self.rounds, "reasons": list(self.reasons)}


@dataclass
class Report:
    top: str
    sim: str
    levels: list[Level] = field(default_factory=list)
    mutants: list[MutantResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    fill: list[FillItem] = field(default_factory=list)  # --fill: each owned file, accepted or rejected and why

    def status(self, level: str) -> Status:
        return next((lv.status for lv in self.levels if lv.level == level), Status.SKIP)

    @property
    def claimed(self) -> str:
        """The highest level such that it and every level below it passed ('none' if L0 did not)."""
        best = "none"
        for lv in self.levels:
            if lv.status != Status.PASS:
                break
            best = lv.level
        return best

    def to_json(self) -> dict:
        return {"top": self.top, "sim": self.sim, "claimed": self.claimed,
                "levels": [asdict(lv) for lv in self.levels], "mutants": [m.to_dict() for m in self.mutants],
                "notes": self.notes, "fill": [item.to_dict() for item in self.fill]}

    def table(self) -> str:
        lines = [f"verif-env check: {self.top} ({self.sim}); claimed: {self.claimed}",
                 f"{'level':<6}{'check':<13}{'status':<11}{'secs':>7}  detail"]
        for lv in self.levels:
            lines.append(f"{lv.level:<6}{lv.name:<13}{lv.status.value:<11}{lv.seconds:>7.1f}  {lv.detail}")
        for item in self.fill:
            lines.append(f"fill  {item.file}: {item.status.value} after {item.rounds} round(s)"
                         + (f" - {item.reasons[-1]}" if item.reasons else ""))
        lines.extend(f"note: {n}" for n in self.notes)
        return "\n".join(lines)


def write_report(report: Report, out_dir: Path, write: bool = True) -> Report:
    """Write reports/check.json and reports/check.txt (when `write`); returns the report."""
    if write:
        (out_dir / "reports").mkdir(parents=True, exist_ok=True)
        write_json_atomic(out_dir / "reports" / "check.json", report.to_json())
        tmp = out_dir / "reports" / "check.txt.tmp"
        tmp.write_text(report.table() + "\n", encoding="utf-8")
        tmp.replace(out_dir / "reports" / "check.txt")
    return report
