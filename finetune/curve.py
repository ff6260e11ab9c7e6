"""`inhouse eval --curve`: the learning curve, the exam's score against training minutes.

Every checkpoint an `inhouse train` run kept (`ADAPTER/checkpoints/step-N/`, each a loadable adapter whose
inhouse.json records its step and elapsed training seconds) and the base (minute 0) sit the same exam in one
mode (the adapter's profile's unless `--tuned-modes` names one), with `finetune.exam.run_exam`. Each point
is compared with the base on the same rows (paired bootstrap 95% intervals). Writes `curve.json`, `curve.md`,
`curve.png` and each point's exam report under `points/`. It answers "how long must we train?": the curve
shows where more minutes stop paying.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

from core.artifacts import atomic_directory, read_info, write_json_atomic
from core.errors import ConfigError
from finetune import checkpoint as ckpt
from finetune import metrics as M
from finetune.config import EvalConfig
from core.completion.profile import profile_of_info
from finetune.exam import HEADLINE_METRICS, check_model_dirs, run_exam
from finetune.report import format_interval

log = logging.getLogger(__name__)


def _records(report_dir: Path, run: str) -> list[dict[str, Any]]:
    lines = (report_dir / "examples.jsonl").read_text(encoding="utf-8").splitlines()
    return [rec for rec in map(json.loads, lines) if rec["run"] == run]


def learning_curve(base: str | Path, adapter: str | Path, dataset: str | Path, out: str | Path, cfg: EvalConfig,
                   *, overwrite: bool = False, run_metadata: dict[str, str] | None = None) -> dict[str, Any]:
    """Score the base and every kept checkpoint of `adapter` on the same rows; write the curve into `out`."""
    base, adapter, out = Path(base), Path(adapter), Path(out)
    check_model_dirs(base, adapter)
    points = ckpt.list_checkpoints(adapter)
    if not points:
        raise ConfigError(f"{str(adapter)!r} has no checkpoints/step-* to draw a learning curve from "
                          "(train with --save-every N)")
    info = read_info(adapter)
    profile = profile_of_info(info, where=str(adapter))
    mode = cfg.tuned_modes[0] if cfg.tuned_modes else profile.mode if profile else cfg.modes[0]
    one = replace(cfg, modes=(mode,), tuned_modes=(mode,))
    log.info("learning curve: base and %d checkpoints in mode %s", len(points), mode)
    rows: list[dict[str, Any]] = []
    with atomic_directory(out, overwrite=overwrite) as tmp:
        run_exam(base, dataset, tmp / "points" / "base", one)
        base_records = _records(tmp / "points" / "base", f"base/{mode}")
        rows.append(_point(0, 0.0, "base", base_records, base_records, cfg))
        for step, path in points:
            point_info = read_info(path)
            report_dir = tmp / "points" / path.name
            run_exam(base, dataset, report_dir, one, adapter=path)
            minutes = float(point_info.get("elapsed_s", 0.0)) / 60
            rows.append(_point(step, minutes, str(path), base_records, _records(report_dir, f"tuned/{mode}"), cfg))
            log.info("step %d (%.1f min): exact match %.3f", step, minutes, rows[-1]["exact_match"])
        curve = {"mode": mode, "n": len(base_records), "adapter": str(adapter.resolve()), "base": str(base.resolve()),
                 "chosen_step": info.get("chosen_step"), "points": rows, **(run_metadata or {})}
        write_json_atomic(tmp / "curve.json", curve)
        (tmp / "curve.md").write_text(_markdown(curve), encoding="utf-8")
        _plot(curve, tmp / "curve.png")
    return curve


def _point(step: int, minutes: float, source: str, base: list[dict], recs: list[dict], cfg: EvalConfig) -> dict:
    if [r["id"] for r in recs] != [r["id"] for r in base]:
        raise ConfigError(f"learning curve point {source} was scored on other rows than the base")
    point: dict[str, Any] = {"step": step, "minutes": round(minutes, 2), "source": source}
    for metric in HEADLINE_METRICS:
        point[metric] = sum(r[metric] for r in recs) / len(recs)
        point[f"{metric}_vs_base"] = M.paired_bootstrap([r[metric] for r in base], [r[metric] for r in recs],
                                                        cfg.bootstrap, cfg.seed).as_dict()
    return point


def _markdown(curve: dict[str, Any]) -> str:
    lines = [f"# Learning curve: {curve['n']} held-out cursors, mode {curve['mode']}", "",
             "Minute 0 is the base. Differences are against the base on the same rows, in points, with paired "
             "bootstrap 95% intervals. The adapter `inhouse train` kept is the step chosen on the dev split "
             f"({curve['chosen_step']}), never on this exam.", "",
             "| step | training minutes | EM | edit sim | EM vs base | edit sim vs base |",
             "|---:|---:|---:|---:|---:|---:|"]
    for p in curve["points"]:
        step = f"{p['step']} (chosen)" if p["step"] == curve["chosen_step"] else str(p["step"])
        diffs = [format_interval(p[f"{metric}_vs_base"]) for metric in HEADLINE_METRICS]
        lines.append(f"| {step} | {p['minutes']:.1f} | {100 * p['exact_match']:.1f} | "
                     f"{100 * p['edit_similarity']:.1f} | {diffs[0]} | {diffs[1]} |")
    return "\n".join(lines) + "\n\n![curve.png](curve.png)\n"


def _plot(curve: dict[str, Any], png: Path) -> None:
    from finetune.report import pyplot, save_png

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    base = curve["points"][0]
    for metric, label in (("exact_match", "exact match"), ("edit_similarity", "edit similarity")):
        xs = [p["minutes"] for p in curve["points"]]
        ys = [100 * p[metric] for p in curve["points"]]
        # The interval of each point's difference to the base, drawn around the point.
        lo = [100 * (base[metric] + p[f"{metric}_vs_base"]["ci_low"]) for p in curve["points"]]
        hi = [100 * (base[metric] + p[f"{metric}_vs_base"]["ci_high"]) for p in curve["points"]]
        errs = [[max(0.0, y - low) for y, low in zip(ys, lo, strict=True)],
                [max(0.0, high - y) for y, high in zip(ys, hi, strict=True)]]
        ax.errorbar(xs, ys, yerr=errs, marker="o", capsize=3, label=label)
    ax.set_xlabel("training minutes")
    ax.set_ylabel("percent")
    ax.set_title(f"exam ({curve['n']} cursors, {curve['mode']}) against training time")
    ax.grid(alpha=0.3)
    ax.legend()
    save_png(fig, png)
    plt.close(fig)
