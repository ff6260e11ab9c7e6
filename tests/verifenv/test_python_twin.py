"""The software twin: public API by tree-sitter, smoke suite, model tests kept only on evidence."""

from __future__ import annotations

import json
from pathlib import Path

from tests.verifenv.test_fill import ScriptedBackend
from verifenv import pyapi, python_twin
from verifenv.config import VerifEnvConfig

SHAPES = Path(__file__).resolve().parent / "py" / "shapes.py"


def test_public_api():
    api = pyapi.read_api(SHAPES)
    assert [f.signature for f in api.functions] == [
        "clamp(value: int, low: int = 0, high: int = 10) -> int",
        "parse_pair(text: str) -> tuple[int, int]",
        "mean(values: list[float]) -> float | None"]
    assert [f.raises for f in api.functions] == [("ValueError",), ("ShapeError",), ()]
    assert [c.name for c in api.classes] == ["ShapeError", "Stack"]  # __all__ decides; _hidden is out
    stack = api.classes[1]
    assert stack.init.signature == "__init__(capacity: int = 4) -> None"
    assert [(m.name, m.raises) for m in stack.methods] == [("push", ("OverflowError",)), ("pop", ("IndexError",))]


def test_sample_values():
    assert python_twin.sample("int") == "1"
    assert python_twin.sample("list[float]") == "[]"
    assert python_twin.sample("float | None") == "1.0"
    assert python_twin.sample("Optional[str]") == "'a'"
    assert python_twin.sample("Widget") is None


def test_smoke_suite_runs(tmp_path):
    result = python_twin.run([SHAPES], tmp_path, VerifEnvConfig())
    assert result.smoke and set(result.smoke.values()) == {"passed"}, result.smoke
    assert 0 < result.coverage["smoke"] == result.coverage["final"] < 1
    saved = json.loads((tmp_path / "reports" / "python_twin.json").read_text())
    assert saved["module"] == "shapes" and saved["candidates"] == []


def test_model_tests_kept_only_on_evidence(tmp_path):
    counter = tmp_path / "flaky.count"
    backend = ScriptedBackend([
        # clamp: right, and reaches branches the smoke test does not
        "    assert mod.clamp(-5) == 0\n    assert mod.clamp(50) == 10\n"
        "    with pytest.raises(ValueError):\n        mod.clamp(1, 5, 2)\n",
        # parse_pair: wrong expectation
        "    assert mod.parse_pair('1,2') == (2, 1)\n",
        # mean: passes once, then fails
        f"    import os\n    p = {str(counter)!r}\n    n = int(open(p).read()) if os.path.exists(p) else 0\n"
        "    open(p, 'w').write(str(n + 1))\n    assert n % 2 == 0\n    assert mod.mean([1.0, 3.0]) == 2.0\n",
        # Stack.push: does not parse
        "    assert mod.Stack(1).push(1) ==\n",
        # Stack.pop: right but covers nothing new
        "    s = mod.Stack()\n    with pytest.raises(IndexError):\n        s.pop()\n",
    ])
    result = python_twin.run([SHAPES], tmp_path / "out", VerifEnvConfig(python_runs=2), fill=True, backend=backend)
    verdict = {c.test: (c.status, c.reason) for c in result.candidates}
    assert verdict["test_clamp_behaviour"][0] == "kept"
    assert verdict["test_parse_pair_behaviour"][0] == "dropped"
    assert verdict["test_parse_pair_behaviour"][1].startswith("failed on run 1")
    assert verdict["test_mean_behaviour"] == ("dropped", "flaky: passed 1 run(s), then failed")
    assert verdict["test_Stack_push_behaviour"][1].startswith("does not parse")
    assert verdict["test_Stack_pop_behaviour"] == ("dropped", "passes but adds no line coverage")
    kept = (tmp_path / "out" / "test_shapes_model.py").read_text()
    assert "def test_clamp_behaviour" in kept and "test_mean_behaviour" not in kept
    assert result.coverage["final"] > result.coverage["smoke"]
    assert "kept 1/5" in result.summary()
