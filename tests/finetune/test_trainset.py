"""The train split through `datasets` (finetune/trainset.py): the same examples, packing and batches as the
in-memory path, a cache that a second run reuses, and accelerate's TensorBoard tracker writing events."""

from __future__ import annotations

import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core import fim
from core.errors import ConfigError
from finetune import data as D
from finetune import trainset
from finetune.config import TrainConfig
from tests.finetune.conftest import FAST

FMT = fim.get_format("starcoder")


@pytest.fixture(scope="module")
def hf_tok(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def _row(prefix, middle, suffix, objective="psm"):
    prompt = FMT.render_prompt(prefix, suffix, objective)
    return {"text": prompt + middle + FMT.eot, "objective": objective, "prompt_chars": len(prompt),
            "prefix": prefix, "middle": middle, "suffix": suffix}


@pytest.fixture(scope="module")
def mixed_dataset(tmp_path_factory, tiny_dataset):
    """The hand-built dataset's train rows with rows that must be refit, dropped or split into windows, in
    two shards."""
    root = tmp_path_factory.mktemp("mixed") / "ds"
    shutil.copytree(tiny_dataset, root)
    rows = D.load_rows(root, "train")
    long = "value = compute(alpha, beta, gamma)\n" * 30
    extra = [_row(long + "total = ", "value + 1", "\nprint(total)\n" * 40), _row("x = ", "y = 2\n" * 80, ""),
             {"text": FMT.render_l2r(long), "objective": "l2r", "prompt_chars": 0, "prefix": long, "middle": "",
              "suffix": ""}]
    rows = rows[:40] + extra + rows[40:]
    columns = {k: [r.get(k) for r in rows] for k in D.TRAIN_COLUMNS}
    table = pa.table(columns)
    for path in (root / "train").glob("*.parquet"):
        path.unlink()
    pq.write_table(table.slice(0, 100), root / "train" / "part-00000.parquet")
    pq.write_table(table.slice(100), root / "train" / "part-00001.parquet")
    return root


@pytest.mark.parametrize(("seq_len", "loss", "packing", "objectives", "bos"), [
    (96, "middle", True, ("psm", "spm", "l2r"), False),
    (256, "full", False, ("psm", "l2r"), True),
])
def test_streamed_batches_equal_the_in_memory_ones(tmp_path, mixed_dataset, hf_tok, seq_len, loss, packing,
                                                   objectives, bos):
    import torch

    pad = hf_tok.pad_token_id
    bos_id = hf_tok.convert_tokens_to_ids(FMT.eot) if bos else None  # any id: a profile's BOS before each example
    examples, expected = D.tokenize_rows(D.load_rows(mixed_dataset, "train"), hf_tok, FMT, loss, seq_len, objectives,
                                         bos_id=bos_id)
    packed = D.pack(examples, seq_len, pad, packing=packing, seed=5)
    streamed, stats = trainset.load(mixed_dataset, hf_tok, FMT, loss=loss, seq_len=seq_len, objectives=objectives,
                                    pad_id=pad, packing=packing, seed=5, bos_id=bos_id,
                                    cache_dir=str(tmp_path / "cache"))
    assert stats == expected
    if seq_len == 96:
        assert stats.refit >= 1 and stats.dropped_too_long >= 1 and stats.by_objective["l2r"] > 3
    assert len(streamed) == len(packed)
    for start in range(0, len(packed), 7):  # batches of 7 sequences, in order
        idx = list(range(start, min(start + 7, len(packed))))
        batch = streamed.batch(idx)
        assert torch.equal(batch.input_ids, packed.input_ids[idx])
        assert torch.equal(batch.labels, packed.labels[idx])
        assert torch.equal(batch.position_ids, packed.position_ids[idx])


def test_the_tokenized_split_is_cached_and_reused(tmp_path, tiny_dataset, hf_tok):
    kwargs = {"loss": "full", "seq_len": 128, "objectives": ("psm", "spm", "l2r"), "pad_id": hf_tok.pad_token_id,
              "cache_dir": str(tmp_path / "cache")}
    first, _ = trainset.load(tiny_dataset, hf_tok, FMT, **kwargs)
    cached = [f["filename"] for f in first.tokens.cache_files]
    assert cached and all(str(tmp_path / "cache") in f for f in cached)
    mtimes = {f: (tmp_path / f).stat().st_mtime_ns for f in cached}
    second, _ = trainset.load(tiny_dataset, hf_tok, FMT, **kwargs)
    assert [f["filename"] for f in second.tokens.cache_files] == cached
    assert {f: (tmp_path / f).stat().st_mtime_ns for f in cached} == mtimes  # read back, not rewritten
    other, _ = trainset.load(tiny_dataset, hf_tok, FMT, **dict(kwargs, seq_len=64))  # another setting: new file
    assert [f["filename"] for f in other.tokens.cache_files] != cached


def test_report_to_tensorboard_writes_events(tmp_path, tiny_model_dir, tiny_dataset):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from finetune.train import train

    cfg = TrainConfig(**dict(FAST, max_steps=3, eval_every=2, save_every=0), report_to="tensorboard",
                      data_cache=str(tmp_path / "cache"))
    out = train(tiny_model_dir, tiny_dataset, tmp_path / "a", cfg, progress=False)
    events = list((out / "runs").rglob("events.out.tfevents.*"))
    assert events, list(out.rglob("*"))
    acc = EventAccumulator(str(events[0].parent))
    acc.Reload()
    assert [e.step for e in acc.Scalars("loss")] == [1, 2, 3]
    assert "dev_loss" in acc.Tags()["scalars"] and "lr" in acc.Tags()["scalars"]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # SQLAlchemy's, about what MLflow's SQL store calls
def test_report_to_mlflow_logs_the_run(tmp_path, tiny_model_dir, tiny_dataset, monkeypatch):
    """The experiment named after the output, the config as parameters, the loss per step, in an MLflow store
    (a local SQLite one here; an admin points MLFLOW_TRACKING_URI at the company's server)."""
    import mlflow

    from finetune.train import train

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    cfg = TrainConfig(**dict(FAST, max_steps=3, eval_every=2, save_every=0), report_to="mlflow",
                      data_cache=str(tmp_path / "cache"))
    train(tiny_model_dir, tiny_dataset, tmp_path / "acme", cfg, progress=False)
    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("acme")
    assert experiment is not None
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.data.params["max_steps"] == "3" and run.data.params["report_to"] == "mlflow"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "loss")] == [1, 2, 3]
    assert client.get_metric_history(run.info.run_id, "dev_loss")


def test_bad_tracker_and_workers_name_the_field():
    with pytest.raises(ConfigError, match="`report_to` must be"):
        TrainConfig(report_to="wandb")
    with pytest.raises(ConfigError, match="`data_workers` must be >= 0"):
        TrainConfig(data_workers=-1)
