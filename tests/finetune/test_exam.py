"""`inhouse eval` with the tiny model: every row through the runner to a real server, profiles per run, the
--compare report, and parity with the language server (the same cursor gives the same prompt and suggestion)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest

from core import fim
from core.client import BackendInfo, CompletionRequest, CompletionResult
from core.completion.profile import CompletionProfile, PromptOrder
from core.errors import ConfigError
from finetune.config import EvalConfig

FMT = fim.get_format("starcoder")


@dataclass
class Recorder:
    """A backend that records each request and answers with a fixed text."""

    reply: str = "value)\n    return total\n"
    profile: CompletionProfile | None = CompletionProfile("starcoder")
    requests: list[CompletionRequest] = field(default_factory=list)

    async def info(self) -> BackendInfo:
        return BackendInfo("tiny", "starcoder", 2000, 2048, (), True, profile=self.profile)

    async def complete(self, req: CompletionRequest) -> CompletionResult:
        self.requests.append(req)
        return CompletionResult(self.reply, 5, 1.0, "length")

    async def aclose(self) -> None:
        pass


def test_plan_runs_names_each_profile():
    from finetune.exam import plan_runs

    base = CompletionProfile("starcoder", order=PromptOrder.SPM, context=True)
    tuned = CompletionProfile("starcoder", order=PromptOrder.PSM, context=False, heal=False)
    cfg = EvalConfig(modes=("l2r", "psm"), tuned_modes=("spm", "psm"))
    runs = plan_runs(base, tuned, "t", cfg, compare=True)
    assert [r.key for r in runs] == ["base/l2r", "base/psm", "base/spm+ctx", "tuned/psm", "tuned/spm"]
    by = {r.key: r for r in runs}
    assert by["base/spm+ctx"].profile == base  # the base's own profile is always graded: the editor's
    assert by["base/psm"].profile.heal is False and by["base/l2r"].profile.heal is True
    assert by["tuned/psm"].profile == tuned and by["tuned/psm"].adapter_id == "t"
    assert plan_runs(base, None, None, EvalConfig(modes=("psm",)), compare=False)[0].key == "base/psm"
    short = plan_runs(base, tuned, "t", EvalConfig(max_prompt_tokens=256), compare=False)
    assert [r.key for r in short] == ["tuned/psm"] and short[0].profile.max_prompt_tokens == 256


async def test_the_exam_and_the_language_server_send_the_same_prompt_and_show_the_same_text(
        tiny_model_dir, tiny_dataset):
    """The parity test: the same cursor (file, position, open documents) through the language server's session
    and through the exam gives a byte-identical request and an identical post-processed suggestion."""
    from finetune.exam import Run, grade_run, load_documents, load_tasks, load_tokenizer, task_input, workspace_index
    from lsp.config import LspConfig
    from lsp.session import Session

    tasks = load_tasks(tiny_dataset, 0, 0)
    documents = load_documents(tiny_dataset)
    tokenizer = load_tokenizer(tiny_model_dir)
    for task in tasks[:6]:
        exam_backend, lsp_backend = Recorder(), Recorder()
        info = await exam_backend.info()
        run = Run("base/spm+ctx", None, info.profile)
        [record] = await grade_run(exam_backend, run, [task], documents, [None], info, tokenizer, EvalConfig())
        session = Session(LspConfig(tokenizer=str(tiny_model_dir)), backend=lsp_backend,
                          index=workspace_index(documents[task.repo]))
        answer = await session.complete("doc", task_input(task, documents))
        assert lsp_backend.requests == exam_backend.requests, task.id
        assert answer.text == record.completion
        assert exam_backend.requests[0].prompt.startswith(FMT.repo_name)  # the profile's context, in both


async def test_each_order_renders_its_own_prompt(tiny_model_dir, tiny_dataset):
    from finetune.exam import Run, grade_run, load_documents, load_tasks, load_tokenizer

    tasks = load_tasks(tiny_dataset, 0, 0)
    docs = load_documents(tiny_dataset)
    task = next(t for t in tasks if t.kind == "char_random")
    tok = load_tokenizer(tiny_model_dir)
    base = CompletionProfile("starcoder")
    prompts = {}
    for mode in ("psm", "spm", "l2r", "psm+ctx"):
        backend = Recorder()
        await grade_run(backend, Run(f"base/{mode}", None, base.variant(mode)), [task], docs, [None], None, tok,
                        EvalConfig())
        prompts[mode] = backend.requests[-1]
    psm, spm, l2r, ctx = prompts["psm"], prompts["spm"], prompts["l2r"], prompts["psm+ctx"]
    assert psm.prompt.startswith(FMT.prefix) and psm.prompt.endswith(FMT.middle) and psm.heal == ""
    assert spm.prompt.startswith(FMT.prefix + FMT.suffix)
    assert spm.heal and (spm.prompt + spm.heal).endswith(task.prefix[-40:])  # healing rewinds the prefix
    assert FMT.middle not in l2r.prompt and (l2r.prompt + l2r.heal).endswith(task.prefix[-40:])
    assert ctx.prompt.startswith(FMT.repo_name + "acme") and FMT.file_sep + "acme/module_" in ctx.prompt
    assert f"{FMT.file_sep}{task.path}\n" not in ctx.prompt.split(FMT.prefix)[0]  # never the file itself as context
    assert len(load_tasks(tiny_dataset, 5, 0)) == 5 and load_tasks(tiny_dataset, 5, 0) == load_tasks(tiny_dataset, 5, 0)


def test_compare_report_through_the_embedded_server(tiny_model_dir, tiny_dataset, trained_adapter, tmp_path):
    from finetune.exam import run_exam

    cfg = EvalConfig(modes=("l2r", "psm"), tuned_modes=("psm", "spm"), limit=6, bootstrap=200, concurrency=4)
    out = tmp_path / "report"
    report = run_exam(tiny_model_dir, tiny_dataset, out, cfg, adapter=trained_adapter, compare=True)
    adapter_profile = json.loads((trained_adapter / "inhouse.json").read_text())["profile"]
    own = f"tuned/{adapter_profile['order']}" + ("+ctx" if adapter_profile["context"] else "")
    assert report["n"] == 6
    assert set(report["runs"]) == {"base/l2r", "base/psm", "base/spm+ctx", own, "tuned/psm", "tuned/spm"}
    assert report["editor_profiles"] == {"base": "base/spm+ctx", "tuned": own}
    assert report["runs"][own]["profile"] == adapter_profile  # graded in the profile the editor gets from /info
    h = report["headline"]
    assert h["base_best_mode"].startswith("base/") and h["tuned_mode"] == own
    for c in report["comparisons"]:
        for m in ("exact_match", "edit_similarity", "syntax_valid"):
            assert c["overall"][m]["ci_low"] <= c["overall"][m]["delta"] <= c["overall"][m]["ci_high"]
    for run in report["runs"].values():
        assert run["overall"]["n"] == 6 and run["overall"]["latency_ms_mean"] > 0
        assert sum(k["n"] for k in run["by_kind"].values()) == 6
    md = (out / "report.md").read_text()
    assert "## Headline" in md and "the editor uses: `base/spm+ctx` (base)" in md
    saved = json.loads((out / "report.json").read_text())
    for chart in saved["charts"]:
        assert (out / chart).read_bytes()[:4] == b"\x89PNG"
        assert md.count(f"]({chart})") == 1
    lines = [json.loads(x) for x in (out / "examples.jsonl").read_text().splitlines()]
    assert len(lines) == 6 * len(report["runs"])
    assert all(not any(s in r["completion"] for s in FMT.sentinels) for r in lines)


def test_a_server_without_a_profile_and_a_directory_without_one_is_a_clear_error(tiny_model_dir, tmp_path):
    from finetune.exam import _profile

    bare = tmp_path / "bare"
    bare.mkdir()
    with pytest.raises(ConfigError, match="no completion profile for the base model: the server reports none"):
        _profile(BackendInfo("m", None, 100, 200, (), False), None, bare, "the base model")
    # A plain TGI reports none: the profile the model directory holds is the editor's.
    assert _profile(BackendInfo("m", None, 100, 200, (), False), None, tiny_model_dir, "base").order is \
        PromptOrder.SPM


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
