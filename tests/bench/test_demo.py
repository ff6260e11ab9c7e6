"""The quick demo's verdict: what a small run can and cannot show, beside the full budget's recorded results,
which must be the figures the README and the records state."""

from __future__ import annotations

import json
import re

from bench import demo

README = demo.ROOT / "README.md"


def _flat(text: str) -> str:
    return re.sub(r"\s+", " ", text.replace("*", ""))


def test_recorded_results_are_the_readmes_and_the_records():
    text = _flat(demo.recorded_results())
    readme = _flat(README.read_text(encoding="utf-8"))
    record = json.loads(demo.FULL_DEMO_RECORD.read_text(encoding="utf-8"))
    em, es = record["points"]["exact_match"], record["points"]["edit_similarity"]
    assert (f"exact match {em['delta']:+.1f} points [{em['ci_low']:+.1f}, {em['ci_high']:+.1f}], edit similarity "
            f"{es['delta']:+.1f} points [{es['ci_low']:+.1f}, {es['ci_high']:+.1f}]") in readme
    assert f"{record['total_minutes']} min" in readme and f"training {record['train_minutes']} min" in readme
    assert (f"exact match {em['delta']:+.1f} [{em['ci_low']:+.1f}, {em['ci_high']:+.1f}], edit similarity "
            f"{es['delta']:+.1f} [{es['ci_low']:+.1f}, {es['ci_high']:+.1f}] points") in text
    # the headline the README states is one of the comparisons read from report.json
    assert "tuned/spm+ctx minus base/spm+ctx: exact match +3.2 [+1.0, +5.5], edit similarity +5.6 [+3.7, +7.6]" in text
    assert "exact match +3.2 [+1.0, +5.5], edit similarity +5.6 [+3.7, +7.6]" in readme
    assert "28.9 minutes of training, 400 held-out cursors" in text
    for where in ("docs/results/demo-full-2026-11-22.json", "docs/results/headline-2026-11-22/", "make demo FULL=1",
                  "bench.demo --full", "bench/headline.sh"):
        assert where in text


def test_a_quick_run_says_what_it_cannot_show():
    flat_zero = {"delta": 0.0, "ci_low": 0.0, "ci_high": 0.0}
    report = {"n": 16, "headline": {"a": "base/spm", "b": "tuned/spm",
                                    "overall": {"exact_match": flat_zero, "edit_similarity": flat_zero}}}
    text = _flat(demo.quick_verdict(demo.QUICK, report))
    assert "cannot show whether tuning pays" in text and "16 cursors one cursor is 6.2 points" in text
    assert "tuned/spm minus base/spm (points, 95% interval; not a verdict): exact match +0.0 [+0.0, +0.0]" in text
    assert "This run" not in _flat(demo.quick_verdict(demo.QUICK, None))  # no exam report: no numbers made up
