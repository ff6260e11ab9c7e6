"""bench/dpo.py on the tiny model: the whole loop runs (scripted users through a real gateway that stores
suggestions, exported pairs, DPO, before/after on another held-out slice) and reports its figures."""

from __future__ import annotations

import json

import pytest

from bench import dpo as bench
from finetune.config import DpoConfig


@pytest.mark.timeout(600)
def test_the_simulated_population_loop_runs_end_to_end(tiny_model_dir, tmp_path):
    from tests.finetune.dataset import make_dataset
    from tests.server.conftest import make_adapter

    tiny_dataset = make_dataset(tmp_path / "ds", fim_format="starcoder", eval_files=4)
    adapter = make_adapter(tiny_model_dir, tmp_path / "team-a", seed=4)
    cfg = DpoConfig(lr=5e-3, batch_size=4, max_steps=3, threads=1)
    result = bench.run(tiny_model_dir, adapter, tiny_dataset, population=12, test=8, cfg=cfg, work=tmp_path / "w")
    print(json.dumps(result))
    pop = result["population"]
    assert pop["rows"] == 12 and pop["outcomes"] == pop["shown"] > 0
    assert result["export"]["stored"] == pop["shown"] and result["export"]["with_outcome"] == pop["outcomes"]
    assert result["export"]["pairs"] > 0, "the random tiny model never completes a middle exactly: pairs"
    assert result["dpo"]["steps"] == 3 and result["dpo"]["dpo_loss"] < result["dpo"]["dpo_loss_start"]
    assert result["test_rows"] == 8 and 0 <= result["exact_match"]["before"] <= 1
    assert set(result["accepted_share_of_shown"]) == {"before", "after", "difference_shown_by_both"}
    assert (tmp_path / "w" / "pairs.jsonl").is_file()
