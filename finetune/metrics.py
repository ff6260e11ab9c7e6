"""Exam metrics: exact match, edit similarity, identifier precision/recall, syntax validity, paired bootstrap.

Called by finetune/exam.py per completion, and to aggregate (per span kind, per language, overall) and to
put a 95% interval on every difference between two systems scored on the same rows.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from core import languages
from core.errors import GrammarError

METRICS = ("exact_match", "edit_similarity", "identifier_precision", "identifier_recall", "syntax_valid")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def exact_match(pred: str, ref: str) -> float:
    """1.0 when the completion equals the reference, ignoring whitespace at both ends."""
    return float(pred.strip() == ref.strip())


def edit_similarity(pred: str, ref: str) -> float:
    """1 - Levenshtein(pred, ref) / max(len(pred), len(ref)); 1.0 for two empty strings."""
    from rapidfuzz.distance import Levenshtein

    if not pred and not ref:
        return 1.0
    return 1.0 - Levenshtein.distance(pred, ref) / max(len(pred), len(ref))


@dataclass(frozen=True)
class Parsed:
    errors: int                 # ERROR and MISSING nodes in the whole document
    identifiers: tuple[str, ...]  # identifier nodes inside the span [start, end) (UTF-8 bytes)


def _is_identifier(node_type: str) -> bool:
    return node_type == "identifier" or node_type.endswith("_identifier")


def parse_span(language_id: str, prefix: str, span: str, suffix: str) -> Parsed | None:
    """Parse prefix + span + suffix; error nodes of the document and identifiers inside the span.

    None when the language has no tree-sitter grammar here.
    """
    try:
        tree = languages.parse(language_id, prefix + span + suffix)
    except GrammarError:
        return None
    start = len(prefix.encode("utf-8"))
    end = start + len(span.encode("utf-8"))
    errors, idents = 0, []
    stack = [tree.root_node]
    while stack:  # only into subtrees that hold an error or overlap the span
        node = stack.pop()
        if node.type == "ERROR" or node.is_missing:
            errors += 1
        if _is_identifier(node.type) and node.start_byte >= start and node.end_byte <= end and node.text:
            idents.append(node.text.decode("utf-8", "replace"))
        for child in node.children:
            if child.has_error or (child.end_byte > start and child.start_byte < end):
                stack.append(child)
    return Parsed(errors, tuple(idents))


def _precision_recall(pred: Iterable[str], ref: Iterable[str]) -> tuple[float, float]:
    p, r = Counter(pred), Counter(ref)
    common = sum((p & r).values())
    n_pred, n_ref = sum(p.values()), sum(r.values())
    if n_pred == 0 and n_ref == 0:
        return 1.0, 1.0
    precision = common / n_pred if n_pred else 0.0
    recall = common / n_ref if n_ref else 0.0
    return precision, recall


def score(prefix: str, middle: str, suffix: str, completion: str, language_id: str,
          reference: Parsed | None = None) -> dict[str, float]:
    """Every metric of one completion against the reference middle.

    Syntax validity: tree-sitter finds no more error nodes in prefix + completion + suffix than in the real file.
    Identifiers are tree-sitter identifier nodes inside the completed span (words, where there is no grammar).
    """
    ref = reference if reference is not None else parse_span(language_id, prefix, middle, suffix)
    got = parse_span(language_id, prefix, completion, suffix) if ref is not None else None
    if ref is not None and got is not None:
        precision, recall = _precision_recall(got.identifiers, ref.identifiers)
        valid = float(got.errors <= ref.errors)
    else:
        precision, recall = _precision_recall(_WORD.findall(completion), _WORD.findall(middle))
        valid = float("nan")
    return {"exact_match": exact_match(completion, middle), "edit_similarity": edit_similarity(completion, middle),
            "identifier_precision": precision, "identifier_recall": recall, "syntax_valid": valid}


def mean(values: Sequence[float]) -> float:
    vals = [v for v in values if v == v]  # NaN (no grammar) is left out
    return sum(vals) / len(vals) if vals else float("nan")


def summarize(records: Sequence[dict[str, Any]], group: Callable[[dict[str, Any]], str] | None = None
              ) -> dict[str, dict[str, float]]:
    """Mean of every metric (and latency) per group (one group "overall" when `group` is None)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for rec in records:
        groups.setdefault(group(rec) if group else "overall", []).append(rec)
    out = {}
    for name, recs in sorted(groups.items()):
        row = {m: mean([r[m] for r in recs]) for m in METRICS}
        row["n"] = len(recs)
        if "latency_ms" in recs[0]:
            lat = sorted(r["latency_ms"] for r in recs)
            row["latency_ms_mean"] = sum(lat) / len(lat)
            row["latency_ms_p50"] = lat[len(lat) // 2]
        out[name] = row
    return out


@dataclass(frozen=True)
class Interval:
    delta: float
    low: float
    high: float
    n: int

    @property
    def above_zero(self) -> bool:
        return self.low > 0

    def as_dict(self) -> dict[str, float]:
        return {"delta": self.delta, "ci_low": self.low, "ci_high": self.high, "n": self.n}


def paired_bootstrap(a: Sequence[float], b: Sequence[float], resamples: int = 2000, seed: int = 0,
                     level: float = 0.95) -> Interval:
    """Mean of b - a over paired rows, with a percentile bootstrap interval (rows resampled together)."""
    import numpy as np

    if len(a) != len(b):
        raise ValueError(f"paired samples differ in length: {len(a)} vs {len(b)}")
    diff = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    diff = diff[~np.isnan(diff)]
    n = len(diff)
    if n == 0:
        return Interval(float("nan"), float("nan"), float("nan"), 0)
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, n, size=(resamples, n))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    return Interval(float(diff.mean()), float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail)), n)
