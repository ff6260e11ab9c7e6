"""`inhouse eval --curve`: the base and every kept checkpoint on the same exam rows, against training minutes."""

from __future__ import annotations

import json
import shutil

from app.cli import main


def test_curve_scores_every_checkpoint_on_the_same_rows(tiny_model_dir, tiny_dataset, trained_adapter, tmp_path,
                                                        capsys):
    out = tmp_path / "curve"
    code = main(["eval", "--base", str(tiny_model_dir), "--data", str(tiny_dataset), "--adapter",
                 str(trained_adapter), "--curve", "--limit", "4", "--max-prompt-tokens", "128",
                 "--bootstrap", "100", "--threads", "1", "-o", str(out)])
    assert code == 0
    curve = json.loads((out / "curve.json").read_text())
    steps = [p["step"] for p in curve["points"]]
    kept = sorted(int(p.name.split("-")[1]) for p in (trained_adapter / "checkpoints").iterdir())
    assert steps == [0, *kept] and len(kept) >= 2
    minutes = [p["minutes"] for p in curve["points"]]
    assert minutes[0] == 0 and minutes == sorted(minutes) and minutes[-1] > 0
    profile = json.loads((trained_adapter / "inhouse.json").read_text())["profile"]
    assert curve["mode"] == profile["order"] + ("+ctx" if profile["context"] else "")
    base = curve["points"][0]
    assert base["exact_match_vs_base"]["delta"] == 0 and base["exact_match_vs_base"]["n"] == 4
    for p in curve["points"]:
        assert 0 <= p["exact_match"] <= 1 and 0 <= p["edit_similarity"] <= 1
        d = p["edit_similarity_vs_base"]
        assert d["ci_low"] <= d["delta"] <= d["ci_high"]
        assert (out / "points" / ("base" if p["step"] == 0 else f"step-{p['step']:08d}") / "report.json").is_file()
    assert (out / "curve.png").read_bytes()[:4] == b"\x89PNG"
    md = (out / "curve.md").read_text()
    assert "| 0 | 0.0 |" in md and "Learning curve: 4 held-out cursors" in capsys.readouterr().out


def test_curve_needs_an_adapter_with_checkpoints(tiny_model_dir, tiny_dataset, trained_adapter, tmp_path, capsys):
    common = ["eval", "--base", str(tiny_model_dir), "--data", str(tiny_dataset), "--curve", "-o", str(tmp_path / "c")]
    assert main(common) == 2 and "--curve needs --adapter" in capsys.readouterr().err
    bare = tmp_path / "bare"
    shutil.copytree(trained_adapter, bare, ignore=shutil.ignore_patterns("checkpoints"))
    assert main([*common, "--adapter", str(bare)]) == 2
    assert "has no checkpoints/step-*" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()  # nothing half-written
