"""The `[cycle]` config section of `inhouse cycle` (resolved once at the entry point)."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from core import config

INITS = ("current", "fresh")
POLICIES = ("auto", "manual")


@config.section("cycle")
@dataclass(frozen=True)
class CycleConfig:
    state_dir: str = "flywheel"  # one folder per team: its cycles, corpus cache, lock and history
    base: str = ""  # base model directory (required)
    repos: str = ""  # repos.toml; the cycle takes the entries whose `team` is the cycle's team (required)
    serve_dir: str = ""  # the model servers' adapters directory; registered versions are copied in (required)
    database_url: str = ""  # the gateway's database (empty: [gateway] database_url)
    adapter_name: str = "main"  # registry name: versions are TEAM/NAME@N, served as TEAM.NAME.vN
    init: str = "current"  # "current": continue from the team's current adapter; "fresh": a new LoRA each cycle
    train_minutes: float = 60.0  # training time budget per cycle
    train_steps: int = 0  # optimizer steps (0: the time budget and [train] decide)
    eval_since: str = ""  # fixed exam cut-off (ISO date or time); empty: the previous cycle's newest commit
    first_eval_days: float = 30.0  # first cycle: files changed in the last N days (of commit time) are the exam
    exam_limit: int = 400  # held-out rows graded per model (0: all)
    min_exam_rows: int = 20  # fewer fresh exam rows: no candidate this time (the cycle waits for more changes)
    canary_share: float = 0.2  # share of the team's users routed to the candidate
    canary_minutes: float = 1440.0  # how long the canary runs (0: promote once the gate passes)
    canary_policy: str = "auto"  # "auto": the gateway's rule promotes or rolls back; "manual": an admin decides
    canary_min_shown: int = 200  # shown suggestions each arm needs before the rule decides
    dpo: bool = False  # also preference-tune on stored suggestions (needs [gateway] store_suggestions)
    dpo_min_pairs: int = 50  # fewer stored preference pairs: no DPO step
    dpo_steps: int = 0  # DPO optimizer steps (0: the dpo command's default)

    def __post_init__(self) -> None:
        config.require(self.init in INITS, "init", f"one of {list(INITS)}", self.init)
        config.require(self.canary_policy in POLICIES, "canary_policy", f"one of {list(POLICIES)}",
                       self.canary_policy)
        config.require(self.train_minutes > 0, "train_minutes", "> 0", self.train_minutes)
        config.require(self.train_steps >= 0, "train_steps", ">= 0", self.train_steps)
        config.require(self.first_eval_days > 0, "first_eval_days", "> 0", self.first_eval_days)
        config.require(self.exam_limit >= 0, "exam_limit", ">= 0", self.exam_limit)
        config.require(self.min_exam_rows >= 1, "min_exam_rows", ">= 1", self.min_exam_rows)
        config.require(0 < self.canary_share < 1, "canary_share", "in (0, 1)", self.canary_share)
        config.require(self.canary_minutes >= 0, "canary_minutes", ">= 0", self.canary_minutes)
        config.require(self.canary_min_shown >= 0, "canary_min_shown", ">= 0", self.canary_min_shown)
        config.require(self.dpo_min_pairs >= 1, "dpo_min_pairs", ">= 1", self.dpo_min_pairs)
        config.require(self.dpo_steps >= 0, "dpo_steps", ">= 0", self.dpo_steps)
        for name in ("adapter_name",):
            value = getattr(self, name)
            config.require(bool(value) and value.replace("-", "").replace("_", "").isalnum() and len(value) <= 32,
                           name, "1-32 letters, digits, '-' or '_'", value)
        if self.eval_since:
            parse_time(self.eval_since, "eval_since")

    def missing(self) -> list[str]:
        """The required keys left empty."""
        return [name for name in ("base", "repos", "serve_dir") if not getattr(self, name)]


def parse_time(value: str, field: str) -> datetime.datetime:
    """An ISO date or date-time as an aware UTC time (a naive one is taken as UTC)."""
    try:
        when = datetime.datetime.fromisoformat(value)
    except ValueError:
        config.require(False, field, "an ISO date (YYYY-MM-DD) or time (YYYY-MM-DDTHH:MM:SS+00:00)", value)
        raise  # unreachable: require raised
    return when if when.tzinfo else when.replace(tzinfo=datetime.UTC)
