"""`inhouse eval` with the tiny model: healing-constrained generation, prompts per mode, the --compare report."""

from __future__ import annotations

import json

import pytest

from core import fim
from finetune.config import EvalConfig

FMT = fim.get_format("starcoder")


@pytest.fixture(scope="module")
def generator(tiny_model_dir):
    from finetune.generate import Generator, load_model

    tok, model = load_model(tiny_model_dir)
    return Generator(tok, model, FMT)


def test_healing_forces_the_removed_text_first(generator):
    """A random model would start anywhere; with healing the output re-types the cut token, in a batch."""
    from finetune.generate import GenRequest

    reqs = [GenRequest("def total(items):\n    ", "retu", 6, False),
            GenRequest("x = compute(alpha, be", "beta", 6, False),
            GenRequest("import ", "", 4, True)]
    out = generator.generate(reqs)
    assert out[0].text.startswith("retu") and out[1].text.startswith("beta")
    assert all(r.tokens <= q.max_new_tokens for r, q in zip(out, reqs, strict=True))
    assert all(s not in r.text for r in out for s in FMT.stop)


def test_prompts_per_mode(generator, tiny_dataset):
    from finetune.exam import load_documents, load_tasks, prepare

    tasks = load_tasks(tiny_dataset, 0, 0)
    docs = load_documents(tiny_dataset)
    task = next(t for t in tasks if t.kind == "char_random")
    tok = generator.tokenizer.backend_tokenizer
    cfg = EvalConfig()
    psm = prepare(task, "psm", FMT, tok, cfg, docs).request
    assert psm.prompt.startswith(FMT.prefix) and psm.prompt.endswith(FMT.middle) and psm.heal == ""
    spm = prepare(task, "spm", FMT, tok, cfg, docs).request
    assert spm.prompt.startswith(FMT.prefix + FMT.suffix)
    assert spm.heal and (spm.prompt + spm.heal).endswith(task.prefix[-40:])  # healing rewinds the prefix
    l2r = prepare(task, "l2r", FMT, tok, cfg, docs).request
    assert FMT.middle not in l2r.prompt and (l2r.prompt + l2r.heal).endswith(task.prefix[-40:])
    ctx = prepare(task, "psm+ctx", FMT, tok, cfg, docs).request
    assert ctx.prompt.startswith(FMT.repo_name + "acme") and FMT.file_sep + "acme/module_" in ctx.prompt
    assert f"{FMT.file_sep}{task.path}\n" not in ctx.prompt.split(FMT.prefix)[0]  # never the file itself as context
    assert len(load_tasks(tiny_dataset, 5, 0)) == 5 and load_tasks(tiny_dataset, 5, 0) == load_tasks(tiny_dataset, 5, 0)


def test_compare_report(tiny_model_dir, tiny_dataset, trained_adapter, tmp_path):
    from finetune.exam import run_exam

    cfg = EvalConfig(modes=("l2r", "psm", "spm+ctx"), tuned_modes=("psm", "spm"), limit=6, max_new_tokens=8,
                     max_new_tokens_multiline=12, bootstrap=200, batch_size=4)
    out = tmp_path / "report"
    report = run_exam(tiny_model_dir, tiny_dataset, out, cfg, adapter=trained_adapter, compare=True)
    assert report["n"] == 6
    assert set(report["runs"]) == {"base/l2r", "base/psm", "base/spm+ctx", "tuned/psm", "tuned/spm"}
    h = report["headline"]
    assert h["base_best_mode"].startswith("base/") and h["tuned_mode"] == "tuned/psm"  # the adapter's primary mode
    for c in report["comparisons"]:
        for m in ("exact_match", "edit_similarity", "syntax_valid"):
            assert c["overall"][m]["ci_low"] <= c["overall"][m]["delta"] <= c["overall"][m]["ci_high"]
    assert {c["b"] for c in report["comparisons"]} == {"tuned/psm", "tuned/spm"}
    for run in report["runs"].values():
        assert run["overall"]["n"] == 6 and run["overall"]["latency_ms_mean"] > 0
        assert sum(k["n"] for k in run["by_kind"].values()) == 6
    saved = json.loads((out / "report.json").read_text())
    assert saved["headline"]["tuned_mode"] == "tuned/psm"
    md = (out / "report.md").read_text()
    assert "## Headline" in md and "tuned/spm" in md
    for chart in saved["charts"]:
        assert (out / chart).read_bytes()[:4] == b"\x89PNG"
    lines = [json.loads(x) for x in (out / "examples.jsonl").read_text().splitlines()]
    assert len(lines) == 6 * 5
    assert all(not any(s in r["completion"] for s in FMT.sentinels) for r in lines)


def test_workers_score_the_same_rows_as_one_process(tiny_model_dir, tiny_dataset, trained_adapter, tmp_path):
    """--workers 2 deals the rows to two processes and merges them back: the same records in the same order."""
    from finetune.exam import run_exam

    common = dict(modes=("psm", "spm+ctx"), tuned_modes=("spm",), limit=5, max_new_tokens=6,
                  max_new_tokens_multiline=8, bootstrap=100, batch_size=1, threads=1)
    outs = {}
    for workers in (1, 2):
        out = tmp_path / f"w{workers}"
        report = run_exam(tiny_model_dir, tiny_dataset, out, EvalConfig(workers=workers, **common),
                          adapter=trained_adapter, compare=True)
        assert report["n"] == 5 and set(report["runs"]) == {"base/psm", "base/spm+ctx", "tuned/spm"}
        outs[workers] = [json.loads(x) for x in (out / "examples.jsonl").read_text().splitlines()]
    strip = [{k: v for k, v in r.items() if k != "latency_ms"} for r in outs[2]]
    assert [r["id"] for r in outs[2]] == [r["id"] for r in outs[1]]
    assert strip == [{k: v for k, v in r.items() if k != "latency_ms"} for r in outs[1]]


def test_cli_compare_needs_adapter(tiny_model_dir, tiny_dataset, tmp_path, capsys):
    from app.cli import main

    code = main(["eval", "--base", str(tiny_model_dir), "--data", str(tiny_dataset), "--compare", "-o",
                 str(tmp_path / "r")])
    assert code == 2 and "--compare needs --adapter" in capsys.readouterr().err
    code = main(["eval", "--base", str(tiny_model_dir), "--data", str(tiny_dataset), "--modes", "psm,fim", "-o",
                 str(tmp_path / "r")])
    assert code == 2 and "`modes` must be" in capsys.readouterr().err


def test_a_wrong_adapter_is_refused_before_any_generation(tiny_model_dir, tiny_dataset, tmp_path):
    """--compare scores the base first: a bad --adapter must fail at once, not after the base's runs."""
    from core.errors import ModelError
    from finetune.exam import run_exam

    with pytest.raises(ModelError, match="not a peft adapter"):
        run_exam(tiny_model_dir, tiny_dataset, tmp_path / "r", EvalConfig(limit=2), adapter=tmp_path / "nope",
                 compare=True)
    assert not (tmp_path / "r").exists()
