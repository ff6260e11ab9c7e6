#!/usr/bin/env bash
# The headline experiment (README, "The headline"): SmolLM2-135M tuned on a repository it cannot have seen
# (a2a-sdk 1.3.0, first published in 2025), graded on 400 held-out cursors against the base in every prompting
# mode, plus the learning curve. On the 2-core development CPU: ~1 min corpus, the training budget, ~70 min
# exam, ~17 min curve. Everything lands in OUT (default runs/headline).
#
#   bench/headline.sh [OUT] [TRAIN_MINUTES]      (run `make model` first; uses .venv)
#   STEPS=N trains exactly N optimizer steps instead of for TRAIN_MINUTES (the 2026-11-22 run made 48 steps in
#   45 min): the same adapter on a busy machine, only later.
#   LIMIT=400 (exam rows), CURVE=0 skips the learning curve, EDITOR=N also types N of the exam's cursors
#   into the real language server (bench/editor.py) and sets them beside the exam, row by row.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="$(realpath -m "${1:-$ROOT/runs/headline}")"
MINUTES="${2:-45}"
LIMIT="${LIMIT:-400}"
CURVE="${CURVE:-1}"
EDITOR="${EDITOR:-0}"
STEPS="${STEPS:-0}"
BUDGET=(--max-minutes "$MINUTES")
[ "$STEPS" = 0 ] || BUDGET=(--max-steps "$STEPS")
INHOUSE="$ROOT/.venv/bin/inhouse"
MODEL="$ROOT/models/smollm2"
[ -x "$INHOUSE" ] || { echo "no $INHOUSE: run 'make install' first" >&2; exit 2; }
[ -f "$MODEL/inhouse.json" ] || { echo "no $MODEL: run 'make model' first" >&2; exit 2; }
mkdir -p "$OUT/src" "$OUT/logs"
cd "$OUT"

if [ ! -d company-repo/.git ]; then
  "$ROOT/.venv/bin/python" -m pip download --no-deps --no-binary :all: -q -d src a2a-sdk==1.3.0
  rm -rf company-repo && mkdir company-repo && tar xzf src/a2a_sdk-1.3.0.tar.gz -C company-repo --strip-components 1
  git -C company-repo -c init.defaultBranch=main init -q
  git -C company-repo add -A
  git -C company-repo -c user.name=headline -c user.email=headline@localhost commit -qm "import a2a-sdk 1.3.0"
fi

cat > inhouse.toml <<'TOML'
# Headline experiment: a larger exam (>= 400 held-out examples) and more rows per training file.
[corpus]
eval_fraction = 0.18          # 540 exam rows, 150 dev rows
dev_fraction = 0.04
eval_examples_per_file = 30
max_examples_per_file = 40

[train]
objectives = ["spm", "l2r"]   # SPM: the middle continues the prefix, which a base without FIM learns fastest
seq_len = 512
batch_size = 4
grad_accum = 2
lr = 3e-4
eval_every = 25
save_every = 20               # every kept checkpoint is a point of the learning curve
keep_checkpoints = 12
dev_limit = 96
TOML

run() { echo "== $*" >&2; "$INHOUSE" -v --config inhouse.toml "$@"; }
[ -f dataset/manifest.json ] || run corpus build company-repo -o dataset --model "$MODEL"
[ -f adapters/company/inhouse.json ] || run train --base "$MODEL" --data dataset -o adapters/company \
  "${BUDGET[@]}" --threads 2 2> logs/train.log
# The exam starts inhouse serve with the base and the adapter and sends every row through the language
# server's runner, in each model's profile (the adapter's own is the one the editor uses).
[ -f exam/report.md ] || run eval --base "$MODEL" --adapter adapters/company --data dataset --compare \
  --tuned-modes spm,spm+ctx --limit "$LIMIT" -o exam 2> logs/exam.log
[ "$CURVE" = 0 ] || [ -f curve/curve.md ] || run eval --base "$MODEL" --adapter adapters/company --data dataset --curve \
  --tuned-modes spm+ctx --limit 120 -o curve 2> logs/curve.log
if [ "$EDITOR" != 0 ] && [ ! -f editor.json ]; then
  "$ROOT/.venv/bin/python" "$ROOT/bench/editor.py" --data dataset --model "$MODEL" --adapter adapters/company \
    --limit "$EDITOR" --exam exam 2> logs/editor.log | tee editor.txt
  tail -n 1 editor.txt > editor.json
fi
cat exam/report.md
[ "$CURVE" = 0 ] || cat curve/curve.md
