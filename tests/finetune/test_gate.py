"""The exam gate (`inhouse eval --incumbent / --gate-only`): the rule per metric, the runs it grades, and on the
tiny model through the served path: an adapter trained on the real rows is eligible against the base, one trained
on swapped middles is refused against it (tests/finetune/flywheel_fixtures.py builds them)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.completion.profile import CompletionProfile, PromptOrder
from core.errors import ConfigError
from finetune.config import EXAM_METRICS, EvalConfig
from finetune.gate import judge
from tests.finetune import flywheel_fixtures as F


def _comparison(**deltas: tuple[float, float, float]) -> dict:
    return {"a": "incumbent/spm", "b": "tuned/spm", "overall": {
        m: {"delta": d, "ci_low": lo, "ci_high": hi, "n": 0 if d != d else 50} for m, (d, lo, hi) in deltas.items()}}


def test_the_rule_per_metric():
    nan = float("nan")
    tie = _comparison(exact_match=(0.0, 0.0, 0.0), edit_similarity=(-0.01, -0.03, 0.01))
    gate = judge(tie, "incumbent", EvalConfig())
    assert gate["eligible"] and gate["against"] == "incumbent" and gate["reference"] == "incumbent/spm"
    assert [r["verdict"] for r in gate["reasons"]] == ["no significant difference"] * 2
    assert gate["rule"]["name"] == "not_worse" and gate["rule"]["metrics"] == ["exact_match", "edit_similarity"]
    # "better" also wants every mean difference above zero.
    better = judge(tie, "incumbent", EvalConfig(gate_rule="better"))
    assert not better["eligible"] and better["reasons"][0]["why"] == "mean difference +0.0 points is not > 0"
    up = _comparison(exact_match=(0.05, 0.01, 0.09), edit_similarity=(0.02, -0.01, 0.05))
    assert judge(up, "base", EvalConfig(gate_rule="better"))["eligible"]
    assert judge(up, "base", EvalConfig())["reasons"][0]["verdict"] == "significantly better"
    # Significantly worse is refused; a margin in points tolerates that much.
    down = _comparison(exact_match=(-0.03, -0.05, -0.01), edit_similarity=(0.0, -0.01, 0.01))
    refused = judge(down, "incumbent", EvalConfig())
    assert not refused["eligible"]
    assert refused["reasons"][0] | {"passed": False, "verdict": "significantly worse",
                                    "why": "upper end -1.0 < -0 points"} == refused["reasons"][0]
    assert judge(down, "incumbent", EvalConfig(gate_margin=1.5))["eligible"]
    assert not judge(down, "incumbent", EvalConfig(gate_margin=0.5))["eligible"]
    # A metric without data fails closed; only the configured metrics count.
    gap = _comparison(exact_match=(0.0, 0.0, 0.0), edit_similarity=(0.0, 0.0, 0.0), syntax_valid=(nan, nan, nan))
    assert not judge(gap, "base", EvalConfig(gate_metrics=("exact_match", "syntax_valid")))["eligible"]
    assert judge(gap, "base", EvalConfig())["eligible"]


def test_gate_settings_are_checked():
    from finetune.metrics import METRICS

    assert METRICS == EXAM_METRICS  # the config's list of metrics is the exam's
    with pytest.raises(ConfigError, match="`gate_rule` must be one of not_worse, better, got 'strict'"):
        EvalConfig(gate_rule="strict")
    with pytest.raises(ConfigError, match="`gate_metrics` must be a non-empty subset"):
        EvalConfig(gate_metrics=("bleu",))
    with pytest.raises(ConfigError, match="`gate_margin` must be in"):
        EvalConfig(gate_margin=-1.0)


def test_the_gate_plans_three_runs_each_in_its_own_profile():
    from finetune.exam import plan_runs

    base = CompletionProfile("starcoder", order=PromptOrder.SPM, context=True)
    current = CompletionProfile("starcoder", order=PromptOrder.SPM, context=False)
    candidate = CompletionProfile("starcoder", order=PromptOrder.PSM, context=False, heal=False)
    cfg = EvalConfig(tuned_modes=("spm",))
    runs = plan_runs(base, candidate, "c", cfg, compare=False, gate=True, gate_only=True,
                     incumbent_profile=current, incumbent_id="i")
    assert [(r.key, r.adapter_id) for r in runs] == [("base/spm+ctx", None), ("incumbent/spm", "i"),
                                                     ("tuned/psm", "c")]
    assert [r.profile for r in runs] == [base, current, candidate]
    # Without --gate-only the candidate's extra modes are graded too; with --compare every mode of the base.
    assert [r.key for r in plan_runs(base, candidate, "c", cfg, compare=False, gate=True)] == [
        "base/spm+ctx", "tuned/psm", "tuned/spm"]
    assert len([r for r in plan_runs(base, candidate, "c", cfg, compare=True, gate=True,
                                     incumbent_profile=current, incumbent_id="i") if r.key.startswith("base/")]) == 6


@pytest.fixture
def stub_adapter(tmp_path) -> Path:
    """Enough of an adapter directory for the checks that run before any work."""
    (tmp_path / "stub").mkdir()
    (tmp_path / "stub" / "adapter_config.json").write_text("{}")
    return tmp_path / "stub"


def test_gate_flags_are_checked_before_any_work(tiny_model_dir, tiny_dataset, stub_adapter, tmp_path):
    from finetune.exam import run_exam

    trained_adapter = stub_adapter
    def refused(match: str, **kwargs) -> None:
        with pytest.raises(ConfigError, match=match):
            run_exam(tiny_model_dir, tiny_dataset, tmp_path / "r", EvalConfig(limit=2), **kwargs)

    refused("the gate needs the candidate", incumbent=trained_adapter)
    refused("--incumbent-id names an adapter on a running server", adapter=trained_adapter, incumbent_id="x")
    refused("give --incumbent-id", adapter=trained_adapter, incumbent=trained_adapter, backend_url="http://x",
            adapter_id="a")
    refused("--gate-only grades the gate's runs only", adapter=trained_adapter, gate_only=True, compare=True)
    refused("is the candidate's --adapter-id", backend_url="http://x", adapter_id="a", incumbent_id="a")
    assert not (tmp_path / "r").exists()


def test_cli_gate_flags(tiny_model_dir, tiny_dataset, stub_adapter, tmp_path, capsys):
    from app.cli import main

    trained_adapter = stub_adapter
    args = ["eval", "--base", str(tiny_model_dir), "--data", str(tiny_dataset), "-o", str(tmp_path / "r"),
            "--adapter", str(trained_adapter)]
    assert main([*args, "--gate-exit-code"]) == 2
    assert "--gate-exit-code needs a gate" in capsys.readouterr().err
    assert main([*args, "--curve", "--gate-only"]) == 2
    assert "--curve draws a learning curve, not a gate" in capsys.readouterr().err


# ---- on the tiny model, through the served path -----------------------------------------------------------------
@pytest.fixture(scope="module")
def flywheel(tmp_path_factory) -> dict[str, Path]:
    """A learnable tiny model, its dataset, the same with swapped middles, and an adapter trained on each."""
    root = tmp_path_factory.mktemp("flywheel")
    model = F.make_tiny_model(root / "model")
    data = F.make_tiny_dataset(root / "data")
    swapped = F.shuffle_middles(data, root / "swapped")
    return {"model": model, "data": data, "swapped": swapped,
            "good": F.train_tiny_adapter(model, data, root / "good"),
            "bad": F.train_tiny_adapter(model, swapped, root / "bad")}


def test_shuffle_middles_swaps_every_train_middle(flywheel):
    from finetune import data as D

    real, swapped = D.load_rows(flywheel["data"], "train"), D.load_rows(flywheel["swapped"], "train")
    assert len(real) == len(swapped) and all(a["middle"] != b["middle"] for a, b in zip(real, swapped, strict=True))
    assert sorted(r["middle"] for r in real) == sorted(r["middle"] for r in swapped)  # the same middles, moved
    assert all(b["text"] == a["text"][:a["prompt_chars"]] + b["middle"] + "<|endoftext|>"
               for a, b in zip(real, swapped, strict=True))
    assert D.load_rows(flywheel["data"], "eval") == D.load_rows(flywheel["swapped"], "eval")
    assert D.manifest_hash(flywheel["data"]) != D.manifest_hash(flywheel["swapped"])  # another tokenized cache


def test_an_adapter_trained_on_the_real_rows_is_eligible_against_the_base(flywheel, tmp_path):
    from finetune.exam import run_exam

    out = tmp_path / "exam"
    report = run_exam(flywheel["model"], flywheel["data"], out, EvalConfig(bootstrap=1000), adapter=flywheel["good"],
                      gate_only=True)
    gate = report["gate"]
    own = f"tuned/{report['editor_profiles']['tuned'].split('/', 1)[1]}"
    assert set(report["runs"]) == {report["editor_profiles"]["base"], own}  # two runs, each in its own profile
    assert gate["against"] == "base" and gate["eligible"] and gate["candidate"] == own
    assert gate["reference"] == report["editor_profiles"]["base"]
    assert [r["metric"] for r in gate["reasons"]] == ["exact_match", "edit_similarity"]
    assert all(r["verdict"] == "significantly better" for r in gate["reasons"]), gate["reasons"]
    assert json.loads((out / "report.json").read_text())["gate"] == gate
    md = (out / "report.md").read_text()
    assert "## Gate" in md and f"against the base `{gate['reference']}`: **eligible**" in md


def test_an_adapter_trained_on_swapped_middles_is_refused_against_the_good_one(flywheel, tmp_path, capsys):
    from app.cli import main

    out = tmp_path / "exam"
    code = main(["eval", "--base", str(flywheel["model"]), "--data", str(flywheel["data"]), "-o", str(out),
                 "--adapter", str(flywheel["bad"]), "--incumbent", str(flywheel["good"]), "--gate-only",
                 "--gate-exit-code", "--bootstrap", "1000"])
    assert code == 3, capsys.readouterr().err[-2000:]
    report = json.loads((out / "report.json").read_text())
    gate = report["gate"]
    assert gate["against"] == "incumbent" and not gate["eligible"]
    assert gate["reference"].startswith("incumbent/") and gate["candidate"].startswith("tuned/")
    assert [r["verdict"] for r in gate["reasons"]] == ["significantly worse"] * 2, gate["reasons"]
    assert all(not r["passed"] and r["ci_high"] < 0 for r in gate["reasons"])
    assert len(report["runs"]) == 3 and report["incumbent"] == str(flywheel["good"].resolve())
    roles = {c["role"] for c in report["comparisons"]}
    assert roles == {"candidate vs incumbent, own profiles", "candidate vs base, own profiles",
                     "incumbent vs base, own profiles"}
    assert "against the incumbent" in (out / "report.md").read_text() and "**not eligible**" in capsys.readouterr().out


def test_the_gate_against_a_running_server(flywheel, tmp_path):
    """--backend-url with --adapter-id and --incumbent-id: the adapters loaded in a deployment are graded."""
    from finetune.exam import exam_server, run_exam

    cfg = EvalConfig(bootstrap=1000, limit=24)
    with exam_server(flywheel["model"], {"good": flywheel["good"], "bad": flywheel["bad"]}, cfg,
                     tmp_path / "serve.log") as url:
        report = run_exam(flywheel["model"], flywheel["data"], tmp_path / "exam", cfg, backend_url=url,
                          adapter_id="good", incumbent_id="bad", gate_only=True)
    gate = report["gate"]
    assert gate["against"] == "incumbent" and gate["eligible"] and report["n"] == 24
    assert gate["reference"].startswith("incumbent/") and report["incumbent_id"] == "bad"


def test_the_fixture_repository_goes_through_the_corpus_builder(tiny_model_dir, tmp_path):
    """make_repo's files are no near-duplicates: the corpus builder keeps and splits them; files committed later
    are the exam with --eval-since."""
    from app.cli import main
    from finetune import data as D

    repo = F.make_repo(tmp_path / "repo", files=12)
    F.commit_files(repo, F.corpus_files(3, start=40), "fresh", date="2026-03-01T12:00:00+00:00")
    code = main(["corpus", "build", str(repo), "-o", str(tmp_path / "ds"), "--model", str(tiny_model_dir),
                 "--eval-since", "2026-02-01", "--workers", "1", "--no-progress"])
    assert code == 0
    manifest = D.read_manifest(tmp_path / "ds")
    assert manifest["counts"]["split"]["eval_files"] == 3 and manifest["splits"]["train"] > 0
    assert {r["path"] for r in D.load_rows(tmp_path / "ds", "eval")} <= set(F.corpus_files(3, start=40))
