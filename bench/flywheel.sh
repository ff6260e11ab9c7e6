#!/usr/bin/env bash
# One real flywheel cycle on SmolLM2 (docs/flywheel.md): a team repository with history (a2a-sdk 1.3.0, which the
# model cannot have seen: 85 % of its files committed on 2026-10-01, the rest on 2026-11-20 as "recent changes"),
# then `inhouse cycle bench`: incremental corpus (the recent files are the exam), a candidate trained within
# TRAIN_MINUTES, the exam gate against the base through `inhouse serve`, the registry; no current adapter yet, so
# an eligible candidate is promoted without a canary. A second, unchanged run shows `nothing_changed`; a third
# after one more commit shows the corpus re-processing one file. Prints the cycle's report.md.
#
#   bench/flywheel.sh [OUT] [TRAIN_MINUTES]          (run `make model` first; uses .venv)
#   EXAM=120 (held-out rows per model)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="$(realpath -m "${1:-$ROOT/runs/flywheel}")"
MINUTES="${2:-15}"
EXAM="${EXAM:-120}"
INHOUSE="$ROOT/.venv/bin/inhouse"
MODEL="$ROOT/models/smollm2"
[ -x "$INHOUSE" ] || { echo "no $INHOUSE: run 'make install' first" >&2; exit 2; }
[ -f "$MODEL/inhouse.json" ] || { echo "no $MODEL: run 'make model' first" >&2; exit 2; }
mkdir -p "$OUT/src" "$OUT/served"
cd "$OUT"
commit() {  # commit() DATE MESSAGE: everything staged, at DATE
  GIT_AUTHOR_DATE="$1" GIT_COMMITTER_DATE="$1" git -C repo -c user.name=bench -c user.email=bench@localhost \
    commit -qm "$2"
}

if [ ! -d repo/.git ]; then
  "$ROOT/.venv/bin/python" -m pip download --no-deps --no-binary :all: -q -d src a2a-sdk==1.3.0
  rm -rf repo unpacked && mkdir repo unpacked && tar xzf src/a2a_sdk-1.3.0.tar.gz -C unpacked --strip-components 1
  git -C repo -c init.defaultBranch=main init -q
  # every seventh file (in a fixed order) is a recent change; the rest is the history before it
  (cd unpacked && find . -type f | LC_ALL=C sort) > files.txt
  awk 'NR % 7 != 0' files.txt > old.txt
  awk 'NR % 7 == 0' files.txt > new.txt
  (cd unpacked && tar cf - -T ../old.txt) | tar xf - -C repo
  git -C repo add -A && commit "2026-10-01T12:00:00+00:00" "history"
  (cd unpacked && tar cf - -T ../new.txt) | tar xf - -C repo
  git -C repo add -A && commit "2026-11-20T12:00:00+00:00" "recent changes"
fi

cat > repos.toml <<TOML
[[repo]]
name = "a2a"
path = "repo"
team = "bench"
TOML
cat > inhouse.toml <<TOML
[gateway]
database_url = "sqlite:///$OUT/gateway.db"

[train]
objectives = ["spm", "l2r"]
seq_len = 512
batch_size = 4
grad_accum = 2
lr = 3e-4
eval_every = 10
save_every = 10
dev_limit = 48
threads = 2

[eval]
threads = 2

[cycle]
state_dir = "$OUT/flywheel"
base = "$MODEL"
repos = "$OUT/repos.toml"
serve_dir = "$OUT/served"
train_minutes = $MINUTES
exam_limit = $EXAM
first_eval_days = 30
TOML

run() { echo "== inhouse $*" >&2; "$INHOUSE" --config inhouse.toml "$@"; }
run admin teams add bench 2>/dev/null || true
/usr/bin/time -v -o cycle1.time "$INHOUSE" --config inhouse.toml cycle bench --json > cycle1.json
run cycle bench --json > cycle2.json
if ! git -C repo log --format=%s | grep -q "one more"; then
  echo "# one more line" >> "repo/$(git -C repo ls-files '*.py' | head -1)"
  git -C repo add -A && commit "2026-11-25T12:00:00+00:00" "one more"
fi
run cycle bench --json --until corpus > cycle3.json
"$ROOT/.venv/bin/python" - <<'PY'
import json
one, two, three = (json.load(open(f"cycle{i}.json")) for i in (1, 2, 3))
corpus = three["state"]["stages"]["corpus"]
print(json.dumps({"cycle1": one["outcome"], "cycle1_minutes": {k: v.get("minutes") for k, v in
                  one["state"]["stages"].items()}, "gate": one["state"]["stages"]["gate"].get("reasons"),
                  "cycle2": two["outcome"], "cycle3_corpus_cache": corpus.get("cache"),
                  "cycle3_corpus_minutes": corpus.get("minutes")}, indent=1))
PY
cat "$OUT/flywheel/bench/cycles/$(jq -r .cycle cycle1.json)/report.md"
run adapters list bench
