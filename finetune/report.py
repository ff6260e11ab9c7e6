"""Reports: the training loss curve, and the exam's report.json, report.md and bar charts per span kind.

Called by finetune/train.py (loss curve) and finetune/exam.py (the exam report). matplotlib runs headless (Agg).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from core.artifacts import write_json_atomic

log = logging.getLogger(__name__)

METRIC_NAMES = ("exact_match", "edit_similarity", "identifier_precision", "identifier_recall", "syntax_valid")


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    tmp.replace(path)


def plot_loss_curve(metrics_file: Path, png: Path) -> None:
    """Training loss and dev loss against steps, from metrics.jsonl."""
    train_pts, dev_pts = [], []
    for line in Path(metrics_file).read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        if "loss" in rec:
            train_pts.append((rec["step"], rec["loss"]))
        elif rec.get("event") == "dev":
            dev_pts.append((rec["step"], rec["dev_loss"]))
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    if train_pts:
        ax.plot(*zip(*train_pts, strict=True), label="train loss", linewidth=1)
    if dev_pts:
        ax.plot(*zip(*dev_pts, strict=True), "o-", label="dev loss (middle tokens)")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy")
    ax.grid(alpha=0.3)
    ax.legend()
    save_png(fig, Path(png))
    plt.close(fig)


def _pct(x: float) -> str:
    return "—" if x != x else f"{100 * x:.1f}"


def format_interval(c: dict[str, float], scale: float = 100.0) -> str:
    """A difference with its interval, in points: `+3.2 [+1.0, +5.5]`."""
    if c["delta"] != c["delta"]:
        return "—"
    return f"{scale * c['delta']:+.1f} [{scale * c['ci_low']:+.1f}, {scale * c['ci_high']:+.1f}]"


def _markdown(report: dict[str, Any]) -> str:
    runs = report["runs"]
    lines = [f"# inhouse exam: {report['n']} held-out cursors", "",
             f"- dataset: `{report['dataset']}` (manifest sha256 `{report['dataset_manifest_sha256'][:12]}`)",
             f"- base: `{report['base']}`" + (f", adapter: `{report['adapter']}`" if report["adapter"] else "")
             + (f", incumbent: `{report['incumbent']}`" if report.get("incumbent") else ""),
             f"- FIM format: `{report['fim_format']}`; every row through the language server's runner "
             f"(should_complete, prompt, request, post-processing) to {report.get('backend', 'the server')}; "
             f"greedy; {report['seconds']:.0f} s",
             "- the editor uses: " + ", ".join(f"`{v}` ({k})" for k, v in report.get("editor_profiles", {}).items()),
             ""]
    if report.get("gate"):
        from finetune.gate import markdown

        lines += markdown(report["gate"])
    h = report.get("headline")
    if h:
        o = h["overall"]
        lines += ["## Headline", "",
                  f"Tuned (`{h['tuned_mode']}`) minus the base's best mode (`{h['base_best_mode']}`), "
                  "points with paired bootstrap 95% intervals:", "",
                  f"- exact match: {format_interval(o['exact_match'])}",
                  f"- edit similarity: {format_interval(o['edit_similarity'])}", ""]
    lines += ["## Every run (percent)", "",
              "| run | EM | edit sim | ident P | ident R | syntax ok | latency ms (mean) | s |",
              "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, run in runs.items():
        o = run["overall"]
        lines.append(f"| {name} | {_pct(o['exact_match'])} | {_pct(o['edit_similarity'])} | "
                     f"{_pct(o['identifier_precision'])} | {_pct(o['identifier_recall'])} | "
                     f"{_pct(o['syntax_valid'])} | {o.get('latency_ms_mean', 0):.0f} | {run['seconds']:.0f} |")
    lines += ["", "Profiles: " + "; ".join(f"`{name}` {run['profile_text']}" for name, run in runs.items()
                                          if "profile_text" in run), ""]
    kinds = sorted({k for run in runs.values() for k in run["by_kind"]})
    lines += ["", "## Exact match / edit similarity per span kind (percent)", "",
              "| run | " + " | ".join(f"{k} (n={next(iter(runs.values()))['by_kind'].get(k, {}).get('n', 0)})"
                                       for k in kinds) + " |",
              "|---|" + "---:|" * len(kinds)]
    for name, run in runs.items():
        cells = [f"{_pct(run['by_kind'][k]['exact_match'])} / {_pct(run['by_kind'][k]['edit_similarity'])}"
                 if k in run["by_kind"] else "—" for k in kinds]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    langs = sorted({k for run in runs.values() for k in run["by_language"]})
    if len(langs) > 1:
        lines += ["", "## Exact match per language (percent)", "", "| run | " + " | ".join(langs) + " |",
                  "|---|" + "---:|" * len(langs)]
        for name, run in runs.items():
            lines.append(f"| {name} | " + " | ".join(_pct(run["by_language"][g]["exact_match"])
                                                    if g in run["by_language"] else "—" for g in langs) + " |")
    if report["comparisons"]:
        lines += ["", "## Differences (b − a, points, paired bootstrap 95% interval)", "",
                  "| a | b | EM | edit sim | ident P | ident R | syntax ok |", "|---|---|---:|---:|---:|---:|---:|"]
        for c in report["comparisons"]:
            o = c["overall"]
            lines.append(f"| {c['a']} | {c['b']} | " + " | ".join(
                format_interval(o[m]) for m in METRIC_NAMES) + " |")
    lines += ["", "Checkpoints are chosen on the dev split, never on this exam. The base's best mode is picked "
              "on the exam itself, which can only favour the base.", ""]
    return "\n".join(lines)


def _bar_charts(out: Path, report: dict[str, Any]) -> list[str]:
    """One grouped bar chart per metric: a group per span kind, a bar per run shown."""
    runs = report["runs"]
    h = report.get("headline")
    shown = [h["base_best_mode"], h["tuned_mode"]] if h else list(runs)
    kinds = sorted({k for name in shown for k in runs[name]["by_kind"]})
    plt = pyplot()
    written = []
    for metric in ("exact_match", "edit_similarity"):
        fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(kinds) + 2), 4))
        width = 0.8 / max(1, len(shown))
        for j, name in enumerate(shown):
            vals = [runs[name]["by_kind"].get(k, {}).get(metric, float("nan")) for k in kinds]
            ax.bar([i + j * width for i in range(len(kinds))], vals, width, label=name)
        ax.set_xticks([i + width * (len(shown) - 1) / 2 for i in range(len(kinds))])
        ax.set_xticklabels(kinds, rotation=30, ha="right")
        ax.set_ylabel(metric.replace("_", " "))
        ax.set_ylim(0, 1)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8)
        name = f"by_kind_{metric}.png"
        save_png(fig, out / name)
        plt.close(fig)
        written.append(name)
    return written


def write_report(out: Path, report: dict[str, Any]) -> None:
    """report.json, report.md and the bar charts per span kind."""
    out = Path(out)
    report["charts"] = _bar_charts(out, report)
    write_json_atomic(out / "report.json", report)
    md = _markdown(report) + "\n" + "\n".join(f"![{c}]({c})" for c in report["charts"]) + "\n"
    tmp = out / ".report.md.tmp"
    tmp.write_text(md, encoding="utf-8")
    tmp.replace(out / "report.md")
