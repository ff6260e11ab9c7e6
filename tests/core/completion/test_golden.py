"""Golden cases for should_complete and post-processing in several languages (golden/*.toml, `║` = cursor)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from core.completion.postprocess import PostprocessContext, postprocess
from core.completion.should_complete import decide

GOLDEN = Path(__file__).parent / "golden"
CURSOR = "║"


def _cases(kind: str) -> list:
    out = []
    for path in sorted(GOLDEN.glob("*.toml")):
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        for case in data.get(kind, []):
            case.setdefault("language", path.stem)
            out.append(pytest.param(case, id=f"{path.stem}: {case['name']}"))
    return out


def _split(text: str) -> tuple[str, str]:
    assert text.count(CURSOR) == 1, "a golden text needs exactly one cursor marker"
    prefix, suffix = text.split(CURSOR)
    return prefix, suffix


def test_every_required_language_has_cases():
    stems = {p.stem for p in GOLDEN.glob("*.toml")}
    assert {"python", "typescript", "java", "c", "go", "verilog"} <= stems


@pytest.mark.parametrize("case", _cases("should_complete"))
def test_should_complete(case):
    prefix, suffix = _split(case["text"])
    decision = decide(prefix, suffix, case["language"], case.get("enabled_languages"))
    assert decision.complete is case["complete"], decision.reason
    if case["complete"]:
        assert decision.multiline is case["multiline"], decision.reason


@pytest.mark.parametrize("case", _cases("postprocess"))
def test_postprocess(case):
    prefix, suffix = _split(case["text"])
    ctx = PostprocessContext(prefix=prefix, suffix=suffix, language_id=case["language"],
                             multiline=case["multiline"], stop=tuple(case.get("stop", ())))
    assert postprocess(case["completion"], ctx) == case["expected"]
