"""--fill: holes filled through core.client and the completion pipeline, kept only when the ladder accepts them."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from core.client import BackendInfo, CompletionResult
from tests.verifenv.conftest import RTL, make_env, require_sim
from verifenv import fill, interface
from verifenv.config import VerifEnvConfig



class ScriptedBackend:
    """A CompletionBackend that answers from a list: stands in for a model whose answers we choose."""

    def __init__(self, answers: list[str]) -> None:
        self.answers = list(answers)
        self.prompts: list[str] = []

    async def info(self) -> BackendInfo:
        return BackendInfo(model_id="scripted", fim_format="starcoder", max_input_tokens=8000,
                           max_total_tokens=8192, adapters=(), token_healing=True)

    async def complete(self, req) -> CompletionResult:
        self.prompts.append(req.prompt)
        text = self.answers.pop(0)
        return CompletionResult(text=req.heal + text if req.heal and not text.startswith(req.heal) else text,
                                generated_tokens=len(text) // 4, elapsed_ms=1.0, finish_reason="eos_token")

    async def aclose(self) -> None:
        pass


def test_holes_parse_and_replace():
    text = "def f():\n    # <hole:body>\n    return None\n    # </hole:body>\n"
    (name,) = fill.holes(text)
    assert name == "body" and fill.holes(text)[name][2] == "    "
    assert fill.replace_hole(text, "body", "    return 1\n") == text.replace("return None", "return 1")
    assert fill.indent_body("\nif x:\n    y = 1\n\n", "        ") == "        if x:\n            y = 1\n"


def test_good_fill_accepted_wrong_fill_repaired_with_feedback(tmp_path):
    require_sim("icarus")
    make_env(tmp_path, "counter.v", "counter")
    iface = interface.load(tmp_path / "interface.json")
    backend = ScriptedBackend([
        # tb/constraints.py: legal (every input combination is legal for the counter)
        "        if outputs.get('wrap'):\n            inputs['load'] = 0\n        return inputs\n",
        # tb/ref_model.py round 1: state, reset, then a wrong step (counts by two)
        "        self.count = 0\n", "        self.count = 0\n",
        "        self.count = (self.count + 2) & 0xFF\n        return {'count': self.count}\n",
        # round 2: right
        "        self.count = 0\n", "        self.count = 0\n",
        "        m = (1 << self.params['WIDTH']) - 1\n"
        "        if inputs['load']:\n            self.count = inputs['din'] & m\n"
        "        elif inputs['en']:\n            self.count = (self.count + 1) & m\n"
        "        return {'count': self.count, 'wrap': int(bool(inputs['en']) and self.count == m)}\n",
        # tb/coverage_points.py
        "    'loaded': lambda i, o: i.get('load') == 1,\n",
    ])
    cfg = VerifEnvConfig(cycles=20, seeds=1, max_repair=1)
    outcome = fill.fill(tmp_path, iface, cfg, "icarus", backend=backend)
    status = {i.file: (i.status, i.rounds) for i in outcome.items}
    assert status == {"tb/constraints.py": ("accepted", 1), "tb/ref_model.py": ("accepted", 2),
                      "tb/coverage_points.py": ("accepted", 1)}, outcome.summary()
    ref_item = next(i for i in outcome.items if i.file == "tb/ref_model.py")
    assert "L3 scoreboard: fail" in ref_item.reasons[0]
    # the round-2 prompt carried the round-1 failure back to the model
    assert "previous attempt was rejected" in backend.prompts[4]
    report = json.loads((tmp_path / "reports" / "check.json").read_text())
    assert report["claimed"] == "L4" and [f["status"] for f in report["fill"]] == ["accepted"] * 3
    assert "self.count = inputs['din'] & m" in (tmp_path / "tb" / "ref_model.py").read_text()


def test_hand_edited_holes_are_not_refilled(tmp_path):
    require_sim("icarus")
    make_env(tmp_path, "counter.v", "counter", model="counter_model.py")
    iface = interface.load(tmp_path / "interface.json")
    backend = ScriptedBackend(["        return inputs\n", "    \n"])
    outcome = fill.fill(tmp_path, iface, VerifEnvConfig(cycles=20, seeds=1, max_repair=0), "icarus", backend=backend)
    status = {i.file: i.status for i in outcome.items}
    assert status["tb/ref_model.py"] == "kept"
    assert "class Model" in (tmp_path / "tb" / "ref_model.py").read_text()
    assert outcome.report.status("L3") == "pass"


@pytest.fixture
def embedded_server(tiny_model_dir, tmp_path) -> Iterator[str]:
    """`inhouse serve` on the tiny model, on 127.0.0.1, stopped at teardown."""
    from core.launch import serve_subprocess

    with serve_subprocess(tiny_model_dir, tmp_path / "serve.log") as url:
        yield url


@pytest.mark.e2e
def test_fill_against_the_embedded_server_rejects_bad_fills_cleanly(tmp_path, embedded_server, monkeypatch):
    """The tiny random model cannot write a reference model: every fill is rejected, the report says so."""
    require_sim("icarus")
    monkeypatch.setenv("INHOUSE_VERIFENV_FILL_MAX_NEW_TOKENS", "48")  # the tiny model's text is noise anyway
    from app.cli import main

    out = tmp_path / "env"
    code = main(["verif-env", str(RTL / "counter.v"), "--top", "counter", "-o", str(out), "--fill", "--check",
                 "--backend-url", embedded_server, "--max-repair", "1", "--seeds", "1", "--cycles", "20"])
    assert code == 0  # the generated environment itself still passes smoke
    report = json.loads((out / "reports" / "check.json").read_text())
    assert {f["file"] for f in report["fill"]} == {"tb/constraints.py", "tb/ref_model.py", "tb/coverage_points.py"}
    assert all(f["status"] == "rejected" and f["reasons"] for f in report["fill"]), report["fill"]
    assert any("rejected" in n for n in report["notes"])
    assert report["claimed"] == "L2"  # never more than it showed: no scoreboard claim without a model
    assert next(lv for lv in report["levels"] if lv["level"] == "L3")["status"] == "not_shown"
    # rejected fills are restored to the generated text, which still passes the ladder's L0
    assert "return None" in (out / "tb" / "ref_model.py").read_text()
    assert "fill  tb/ref_model.py: rejected" in (out / "reports" / "check.txt").read_text()
