"""Draw chart.png from the A/B runs here: scaling efficiency 1 -> 2 Ray workers by wall clock, each version,
with the host's own 2-process ceiling measured in the same rounds. `python chart.py` in this directory."""

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

HERE = Path(__file__).parent
runs = []  # (label, efficiency, ceiling)
for name in ("ab-5-rounds.txt", "ab-7-rounds.txt"):
    text = (HERE / name).read_text()
    for block in text.split("=== ")[1:]:
        side, size = block.split()[:2]
        eff = float(re.search(r"2 worker\(s\):.*?scaling efficiency ([\d.]+) wall", block).group(1))
        ceiling = float(re.search(r"ran at ([\d.]+) of its speed", block).group(1))
        rounds = name.split("-")[1]
        runs.append((f"{'driver writes' if side == 'old' else 'workers write'}\n{size}, {rounds} rounds", eff, ceiling))
fig, ax = plt.subplots(figsize=(10, 4.5))
xs = range(len(runs))
ax.bar([x - 0.2 for x in xs], [r[1] for r in runs], width=0.4, label="build: 1 -> 2 workers, wall")
ax.bar([x + 0.2 for x in xs], [r[2] for r in runs], width=0.4, label="host: pure-Python loop, 2 at once / alone")
ax.axhline(0.8, color="k", linestyle="--", linewidth=1, label="target 0.8")
ax.set_xticks(list(xs), [r[0] for r in runs], fontsize=8)
ax.set_ylim(0, 1.1)
ax.set_ylabel("scaling efficiency (median run)")
ax.set_title("Ray corpus build on a 2-core VM, 2026-12-02 (bench/corpus.py --executor ray)")
ax.legend(fontsize=8, loc="lower right")
fig.tight_layout()
fig.savefig(HERE / "chart.png", dpi=110)
