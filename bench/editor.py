"""The editor-path check: held-out cursors typed into the real `inhouse lsp`, graded like the exam.

An LSP client (pygls, JSON-RPC over stdio) drives an `inhouse lsp` subprocess backed by `inhouse serve` with the
base and, when given, the adapter (as the editor would use it: the adapter's id in the settings, the profile from
`/info`). For each of N held-out cursors of a dataset (the exam's rows: same sample, same seed), the held-out file
is opened with its middle removed in a workspace holding its repository (indexed by the language server itself),
its neighbours open as the exam assumes, and one inline completion is asked at the cursor. The suggestion that reaches the client is scored with the exam's metrics. With
`--exam REPORT_DIR` the figures are set beside that exam's run in the same profile, row by row.

    .venv/bin/python bench/editor.py --data DATASET [--model models/smollm2] [--adapter ADAPTER]
                                     [--limit 40] [--exam EXAM_DIR]

Prints exact match and edit similarity (with bootstrap 95% intervals), rows identical to the exam, and the
latency distribution of keystroke-free requests (p50/p95/max, ms). The last stdout line is JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lsprotocol import types  # noqa: E402

from bench.lsp import language_server, percentile  # noqa: E402
from finetune import metrics as M  # noqa: E402
from finetune.config import EvalConfig  # noqa: E402
from finetune.exam import TUNED_ID, exam_server, load_documents, load_tasks, task_input  # noqa: E402


def utf16_position(prefix: str) -> types.Position:
    """The LSP position (UTF-16 code units, the protocol's default) of the end of `prefix`."""
    line = prefix.count("\n")
    last = prefix[prefix.rfind("\n") + 1:]
    return types.Position(line=line, character=len(last.encode("utf-16-le")) // 2)


def _items(result) -> list[types.InlineCompletionItem]:
    return list(result.items if isinstance(result, types.InlineCompletionList) else result or [])


def write_workspace(root: Path, documents: dict[str, dict[str, str]]) -> None:
    """Each repository's files on disk under root/REPO, as a developer's checkout (the workspace index reads them)."""
    for repo, files in documents.items():
        for path, text in files.items():
            target = root / repo / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")


async def wait_for_index(log: Path, folders: int, timeout_s: float = 600) -> None:
    """Until the language server logged its workspace index done for every folder (it builds it in the
    background; a request before that would see fewer definitions than the exam)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        text = log.read_text(encoding="utf-8", errors="replace") if log.is_file() else ""
        if text.count("symbol index:") >= folders:
            return
        await asyncio.sleep(0.2)
    raise TimeoutError(f"the language server did not finish its workspace index in {timeout_s:.0f} s (see {log})")


async def type_cursors(url: str, model_dir: Path, adapter_id: str | None, tasks, documents, root: Path,
                       log: Path) -> list[dict]:
    """One inline completion per task through `inhouse lsp`, one language server per repository opened as its
    workspace folder (indexed by the server itself); the held-out file's neighbours are opened first, the nearest
    by name last (the most recent), then the held-out file with its middle removed. Records in task order."""
    write_workspace(root, documents)
    by_id: dict[int, dict] = {}
    for repo in dict.fromkeys(t.repo for t in tasks):
        mine = [t for t in tasks if t.repo == repo]
        for rec in await _type_in_repo(url, model_dir, adapter_id, mine, documents, root / repo,
                                       log.with_name(f"{log.stem}-{len(by_id)}{log.suffix}")):
            by_id[rec["id"]] = rec
    return [by_id[t.id] for t in tasks]


async def _type_in_repo(url: str, model_dir: Path, adapter_id: str | None, tasks, documents, repo_root: Path,
                        log: Path) -> list[dict]:
    options = {"backendUrl": url, "tokenizer": str(model_dir), "indexWorkspace": True, "timeoutMs": 600_000,
               "adapter": adapter_id}
    records = []
    async with language_server(options, [repo_root], log) as client:
        await wait_for_index(log, 1)
        for task in tasks:
            inp = task_input(task, documents)
            opened = []
            for path in reversed(list(inp.documents)):
                uri = (repo_root / path).as_uri()
                client.text_document_did_open(types.DidOpenTextDocumentParams(text_document=types.TextDocumentItem(
                    uri=uri, language_id=task.language, version=1, text=documents[task.repo][path])))
                opened.append(uri)
            uri = (repo_root / task.path).as_uri()
            client.text_document_did_open(types.DidOpenTextDocumentParams(text_document=types.TextDocumentItem(
                uri=uri, language_id=task.language, version=1, text=task.prefix + task.suffix)))
            t0 = time.perf_counter()
            result = await client.text_document_inline_completion_async(types.InlineCompletionParams(
                text_document=types.TextDocumentIdentifier(uri=uri), position=utf16_position(task.prefix),
                context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked)))
            latency = (time.perf_counter() - t0) * 1000
            items = _items(result)
            text = str(items[0].insert_text) if items else ""
            for done in (*opened, uri):
                client.text_document_did_close(types.DidCloseTextDocumentParams(
                    text_document=types.TextDocumentIdentifier(uri=done)))
            records.append({"id": task.id, "kind": task.kind, "completion": text, "latency_ms": round(latency, 1)})
    return records


def run(model_dir: Path, dataset: Path, adapter: Path | None, limit: int, seed: int, workdir: Path) -> dict:
    """Start the server, type every cursor through the language server, score; the result as a dict."""
    tasks = load_tasks(dataset, limit, seed)
    documents = load_documents(dataset)
    cfg = EvalConfig(concurrency=1)
    workdir.mkdir(parents=True, exist_ok=True)
    with exam_server(model_dir, {TUNED_ID: adapter} if adapter else {}, cfg, workdir / "serve.log") as url:
        root = workdir / "ws"
        root.mkdir(parents=True, exist_ok=True)
        records = asyncio.run(type_cursors(url, model_dir, TUNED_ID if adapter else None, tasks, documents, root,
                                           workdir / "lsp.log"))
    for task, rec in zip(tasks, records, strict=True):
        rec.update(M.score(task.prefix, task.middle, task.suffix, rec["completion"], task.language,
                           M.parse_span(task.language, task.prefix, task.middle, task.suffix)))
    return {"model": "tuned" if adapter else "base", "n": len(records), "records": records}


def compare_with_exam(result: dict, exam_dir: Path) -> dict:
    """The exam's run in the editor's profile for the same model, row by row against the editor's records."""
    report = json.loads((exam_dir / "report.json").read_text(encoding="utf-8"))
    key = report["editor_profiles"][result["model"]]
    exam = {}
    for line in (exam_dir / "examples.jsonl").read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        if rec["run"] == key:
            exam[rec["id"]] = rec
    rows = [r for r in result["records"] if r["id"] in exam]
    same = sum(1 for r in rows if r["completion"] == exam[r["id"]]["completion"])
    return {"exam_run": key, "rows": len(rows), "identical": same,
            "exam_exact_match": statistics.fmean(exam[r["id"]]["exact_match"] for r in rows) if rows else float("nan"),
            "exam_edit_similarity": statistics.fmean(exam[r["id"]]["edit_similarity"] for r in rows)
            if rows else float("nan")}


def summary(result: dict, bootstrap: int = 2000) -> dict:
    recs = result["records"]
    out: dict = {"n": len(recs)}
    for metric in ("exact_match", "edit_similarity"):
        values = [r[metric] for r in recs]
        ci = M.paired_bootstrap([0.0] * len(values), values, bootstrap, 0).as_dict()
        out[metric] = {"mean": ci["delta"], "ci_low": ci["ci_low"], "ci_high": ci["ci_high"]}
    lat = [r["latency_ms"] for r in recs]
    out["latency_ms"] = {"p50": percentile(lat, 0.5), "p95": percentile(lat, 0.95), "max": max(lat, default=0.0)}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="dataset (its eval split is the exam)")
    ap.add_argument("--model", type=Path, default=ROOT / "models" / "smollm2")
    ap.add_argument("--adapter", type=Path, default=None)
    ap.add_argument("--limit", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--exam", type=Path, default=None, help="an exam report directory to compare with")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="inhouse-editor-") as tmp:
        result = run(args.model, args.data, args.adapter, args.limit, args.seed, Path(tmp))
    figures = summary(result)
    print(f"editor path ({result['model']}, {figures['n']} held-out cursors through inhouse lsp):")
    for metric in ("exact_match", "edit_similarity"):
        f = figures[metric]
        print(f"  {metric}: {100 * f['mean']:.1f} % [{100 * f['ci_low']:.1f}, {100 * f['ci_high']:.1f}]")
    lat = figures["latency_ms"]
    print(f"  latency per suggestion: p50 {lat['p50']:.0f} ms, p95 {lat['p95']:.0f} ms, max {lat['max']:.0f} ms")
    if args.exam is not None:
        figures["exam"] = compare_with_exam(result, args.exam)
        e = figures["exam"]
        print(f"  the exam's {e['exam_run']} on the same {e['rows']} rows: exact match "
              f"{100 * e['exam_exact_match']:.1f} %, edit similarity {100 * e['exam_edit_similarity']:.1f} %; "
              f"identical suggestions {e['identical']}/{e['rows']}")
    print(json.dumps({"name": "editor", "figures": figures}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
