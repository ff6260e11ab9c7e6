"""Training data: loss masks, packing with per-example isolation, re-rendering and the batch order."""

from __future__ import annotations

import pytest

from core import fim
from finetune import data as D

FMT = fim.get_format("starcoder")


@pytest.fixture(scope="module")
def hf_tok(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def _row(prefix, middle, suffix, objective="psm"):
    prompt = FMT.render_prompt(prefix, suffix, objective)
    return {"text": prompt + middle + FMT.eot, "objective": objective, "prompt_chars": len(prompt),
            "prefix": prefix, "middle": middle, "suffix": suffix}


def test_full_loss_masks_sentinels_but_keeps_end_token(hf_tok):
    [ex], stats = D.tokenize_rows([_row("x = 1\n", "y = x", "\nprint(y)\n")], hf_tok, FMT, "full", 256)
    sentinels = D.sentinel_ids(hf_tok, FMT)
    eot = hf_tok.convert_tokens_to_ids(FMT.eot)
    assert sentinels and eot not in sentinels
    for tid, lab in zip(ex.ids, ex.labels, strict=True):
        assert lab == (D.IGNORE if tid in sentinels else tid)
    assert ex.labels[-1] == eot and stats.examples == 1


def test_middle_loss_covers_the_middle_and_the_token_across_the_cursor(hf_tok):
    row = _row("def total(items):\n    return sum(ite", "ms)", "\n")
    row_spm = _row("def total(items):\n    return sum(ite", "ms)", "\n", "spm")
    [psm], _ = D.tokenize_rows([row], hf_tok, FMT, "middle", 256)
    [spm], _ = D.tokenize_rows([row_spm], hf_tok, FMT, "middle", 256)
    for ex, r in ((psm, row), (spm, row_spm)):
        targets = [t for t, lab in zip(ex.ids, ex.labels, strict=True) if lab != D.IGNORE]
        text = hf_tok.decode(targets)
        assert text.endswith("ms)" + FMT.eot)
        assert len(text) < len(r["text"]) // 2
    # In SPM the prefix runs straight into the middle: the joint token over `items` is learned whole.
    spm_targets = hf_tok.decode([t for t, lab in zip(spm.ids, spm.labels, strict=True) if lab != D.IGNORE])
    assert spm_targets.startswith(("items", "ms", "ite", "tems", "s"))


def test_long_rows_cut_like_inference_or_split(hf_tok):
    long = "value = compute(alpha, beta, gamma)\n" * 30
    l2r = {"text": FMT.render_l2r(long), "objective": "l2r", "prompt_chars": 0, "prefix": long, "middle": "",
           "suffix": ""}
    fits = _row(long + "total = ", "value + 1", "\nprint(total)\n" * 40)
    hopeless = _row("x = ", "y = 2\n" * 80, "")
    examples, stats = D.tokenize_rows([fits, hopeless, l2r], hf_tok, FMT, "middle", 96)
    assert stats.dropped_too_long == 1 and stats.refit == 1
    assert all(len(e.ids) <= 96 for e in examples)
    assert stats.by_objective["psm"] == 1 and stats.by_objective["l2r"] > 3
    # the cut example is what the prompt builder renders at inference, middle intact
    refit = D.fit_row(fits, FMT, hf_tok, 96)
    prompt = refit["text"][:refit["prompt_chars"]]
    assert refit["text"] == prompt + "value + 1" + FMT.eot
    assert prompt.startswith(FMT.prefix) and prompt.endswith(FMT.middle) and "total = " + FMT.suffix in prompt
    fim_ex = next(e for e in examples if e.ids[0] == hf_tok.convert_tokens_to_ids(FMT.prefix))
    assert hf_tok.decode([t for t, lab in zip(fim_ex.ids, fim_ex.labels, strict=True) if lab != D.IGNORE]) == (
        "value + 1" + FMT.eot)


def test_packing_isolates_examples(tiny_model_dir, hf_tok):
    """The logits of an example packed after another equal its logits alone: no attention across examples."""
    import torch
    from transformers import AutoModelForCausalLM

    a_ids = hf_tok("import os\nprint(os.getcwd())\n")["input_ids"]
    a = D.Example(a_ids, a_ids)
    b_ids = hf_tok("def f(x):\n    return x + 1\n")["input_ids"]
    b = D.Example(b_ids, b_ids)
    packed = D.pack([a, b], 64, hf_tok.pad_token_id, packing=True, seed=0)
    assert len(packed) == 1
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    row = packed.input_ids[0].tolist()
    start = next(i for i in range(len(row)) if row[i:i + len(b_ids)] == b_ids)
    with torch.no_grad():
        together = model(input_ids=packed.input_ids, position_ids=packed.position_ids, use_cache=False).logits
        alone = model(input_ids=torch.tensor([b_ids]), use_cache=False).logits
    assert torch.allclose(together[0, start:start + len(b_ids)], alone[0], atol=1e-4)
    # Without the restart of position ids the same tokens see the other example: the check above can fail.
    with torch.no_grad():
        leaky = model(input_ids=packed.input_ids, use_cache=False).logits
    assert not torch.allclose(leaky[0, start:start + len(b_ids)], alone[0], atol=1e-4) or start == 0
    # Each example's first label is masked (it would be predicted from the other example); padding has no loss.
    assert packed.labels[0, start] == D.IGNORE
    assert (packed.labels[0, len(a.ids) + len(b_ids):] == D.IGNORE).all()


def test_spm_rerender_keeps_repo_context():
    ctx = fim.RepoContext("acme", "acme/b.py", (fim.RepoFile("acme/a.py", "A = 1\n"),))
    row = {"prefix": "x = ", "middle": "A", "suffix": "\n",
           "text": FMT.render_example("x = ", "A", "\n", "psm", ctx)}
    assert D.spm_text(row, FMT) == FMT.render_example("x = ", "A", "\n", "spm", ctx)
    plain = dict(row, text=FMT.render_example("x = ", "A", "\n", "psm"))
    assert D.spm_text(plain, FMT) == FMT.render_example("x = ", "A", "\n", "spm")
    [spm] = D.dev_rows_in([row], FMT, "spm")
    assert spm["text"][:spm["prompt_chars"]] == FMT.render_prompt("x = ", "\n", "spm", ctx)


def test_batch_plan_is_deterministic_and_splits_ranks():
    plan = D.BatchPlan(sequences=40, batch_size=2, grad_accum=2, world_size=2, seed=7)
    assert plan.steps_per_epoch == 5
    seen = []
    for step in range(5):
        for micro in range(2):
            for rank in range(2):
                seen += plan.indices(step, micro, rank)
    assert sorted(seen) == list(range(40))  # one epoch reads every sequence once
    again = D.BatchPlan(sequences=40, batch_size=2, grad_accum=2, world_size=2, seed=7)
    assert again.indices(3, 1, 0) == plan.indices(3, 1, 0)
    assert plan.indices(5, 0, 0) != plan.indices(0, 0, 0) or plan.order(1) != plan.order(0)


def test_missing_dataset_is_a_clear_error(tmp_path):
    from core.errors import CorpusError

    with pytest.raises(CorpusError, match="not an inhouse dataset"):
        D.read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text("{}")
    with pytest.raises(CorpusError, match="no train/"):
        D.load_rows(tmp_path, "train")
