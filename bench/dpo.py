"""Does preference tuning on what users keep help? A simulated population, then DPO, then a fresh slice.

Held-out rows of a dataset (its eval split, shuffled by the seed) are cut in two slices. On the first, scripted
users complete each cursor through a real gateway with `store_suggestions` on (the language server's session,
with `X-Inhouse-Suggestion-Id`), in front of `inhouse serve` with the current adapter: a user accepts a shown
suggestion when it equals the true middle (the exam's exact match), else dismisses it and types the true middle;
each outcome is posted as the language server would (`lsp.adoption.final_text` on the finished document). The
team's pairs are exported (`gateway.suggestions.preference_pairs`), `inhouse dpo` runs on them, and on the
second slice the current and the DPO adapter complete the same cursors: exact match (paired bootstrap 95%
interval of the difference) and the share of shown suggestions that would be accepted (bootstrap intervals per
arm; the difference over cursors shown by both).

    .venv/bin/python bench/dpo.py --base models/smollm2 --adapter adapters/red --data DATASET
                                  [--population 200] [--test 200] [--max-steps 0] [--beta 0.1] [--lr 5e-5]

The last stdout line is JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from core.completion.pipeline import CompletionInput  # noqa: E402
from finetune import data as D  # noqa: E402
from finetune import metrics as M  # noqa: E402
from finetune.config import DpoConfig  # noqa: E402

TEAM, USER, CURRENT, TUNED = "bench", "scripted", "current", "current-dpo"


def held_out(dataset: Path, population: int, test: int, seed: int) -> tuple[list[dict], list[dict]]:
    """Two disjoint slices of the eval split's FIM rows (one row per cursor)."""
    rows = [r for r in D.load_rows(dataset, "eval") if r.get("objective", "psm") == "psm" and r.get("middle")]
    seen, unique = set(), []
    for r in rows:
        key = (r.get("path"), r["prefix"][-200:], r["middle"])
        if key not in seen:
            seen.add(key)
            unique.append(r)
    random.Random(seed).shuffle(unique)
    if len(unique) < 2:
        raise SystemExit(f"{dataset}: fewer than 2 held-out cursors in its eval split")
    population = min(population, len(unique) // 2)
    return unique[:population], unique[population:population + test]


def _input(row: dict) -> CompletionInput:
    return CompletionInput(row.get("path") or "a.py", row["prefix"], row["suffix"], row.get("language") or "python",
                           {}, row.get("repo") or "")


def _lsp_config(base: Path, **fields: Any):
    from lsp.config import LspConfig

    # a bench waits for every suggestion (an editor's 5 s would drop the slow ones a busy CPU gives)
    return LspConfig(tokenizer=str(base), timeout_s=120.0, **fields)


async def simulate(rows: list[dict], gateway_url: str, token: str, base: Path) -> dict[str, int]:
    """Scripted users through the gateway: accept exact matches, else dismiss and type the true middle."""
    from lsp.adoption import final_text
    from lsp.session import Session
    from lsp.suggestions import Shown

    counts = {"rows": len(rows), "shown": 0, "accepted": 0, "outcomes": 0}
    session = Session(_lsp_config(base, gateway_url=gateway_url, gateway_token=token))
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            for i, row in enumerate(rows):
                sid = f"bench-{i}"
                answer = await session.complete(f"pop-{i}", _input(row), suggestion_id=sid)
                if not answer.text or answer.suggestion_id is None:
                    continue
                counts["shown"] += 1
                accepted = bool(M.exact_match(answer.text, row["middle"]))
                counts["accepted"] += accepted
                document = row["prefix"] + row["middle"] + row["suffix"]
                shown = Shown(sid, "bench", row.get("language") or "python", answer.text, len(row["prefix"]),
                              stored=True, lead=answer.lead, before=row["prefix"][-64:], after=row["suffix"][:64])
                final = final_text(shown, document, accepted)
                if final is None:
                    continue
                body = {"id": sid, "final": answer.lead + final, "shown": answer.lead + answer.text}
                for _ in range(100):  # the gateway stores the suggestion just after answering (a user takes longer)
                    r = await http.post(f"{gateway_url}/v1/suggestions/outcome", json=body,
                                        headers={"Authorization": f"Bearer {token}"})
                    if r.status_code != 404:
                        break
                    await asyncio.sleep(0.02)
                counts["outcomes"] += r.status_code == 200
    finally:
        await session.aclose()
    return counts


async def complete_all(rows: list[dict], server_url: str, adapter: str, base: Path) -> list[str]:
    from lsp.session import Session

    session = Session(_lsp_config(base, backend_url=server_url, adapter=adapter))
    try:
        return [(await session.complete(f"{adapter}-{i}", _input(row))).text for i, row in enumerate(rows)]
    finally:
        await session.aclose()


def _share_interval(values: list[float], seed: int, resamples: int = 2000) -> dict[str, float]:
    import numpy as np

    if not values:
        return {"share": float("nan"), "ci_low": float("nan"), "ci_high": float("nan"), "n": 0}
    arr = np.asarray(values, dtype=float)
    means = arr[np.random.default_rng(seed).integers(0, len(arr), size=(resamples, len(arr)))].mean(axis=1)
    return {"share": float(arr.mean()), "ci_low": float(np.percentile(means, 2.5)),
            "ci_high": float(np.percentile(means, 97.5)), "n": len(arr)}


def run(base: Path, adapter: Path, dataset: Path, *, population: int, test: int, cfg: DpoConfig, seed: int = 0,
        threads: int = 1, work: Path | None = None) -> dict[str, Any]:
    from gateway.app import create_app as gateway_app
    from gateway.config import GatewayConfig
    from gateway.suggestions import preference_pairs
    from server.app import create_app as server_app
    from server.threaded import serve_in_thread

    started = time.monotonic()
    pop_rows, test_rows = held_out(dataset, population, test, seed)
    work = Path(work or tempfile.mkdtemp(prefix="inhouse-bench-dpo-"))
    adapters = work / "adapters"
    shutil.copytree(adapter, adapters / CURRENT, dirs_exist_ok=True)

    # 1. the population through a gateway that stores suggestions
    server = server_app(base, adapters, threads=threads)
    gw_app = None
    try:
        with serve_in_thread(server) as server_url:
            gw_app = gateway_app(GatewayConfig(upstreams=(server_url,), database_url=f"sqlite:///{work / 'gw.db'}",
                                               store_suggestions=True, health_interval_s=0.5,
                                               rate_limit_per_minute=100000))
            gw = gw_app.state.gateway
            gw.accounts.add_user(USER)
            gw.accounts.add_team(TEAM)
            gw.accounts.add_adapter(CURRENT)
            gw.accounts.add_member(TEAM, USER)
            gw.accounts.allow(TEAM, CURRENT, default=True)
            token = gw.accounts.create_token(USER)
            with serve_in_thread(gw_app) as gateway_url:
                simulated = asyncio.run(simulate(pop_rows, gateway_url, token, base))
                for _ in range(200):  # the gateway writes rows off the answer's path
                    _rows, counts = preference_pairs(gw.engine, TEAM)
                    if counts.stored >= simulated["shown"]:
                        break
                    time.sleep(0.05)
            pairs, counts = preference_pairs(gw.engine, TEAM)
    finally:
        server.state.server.engine.close()
    prefs = work / "pairs.jsonl"
    prefs.write_text("".join(json.dumps(p) + "\n" for p in pairs), encoding="utf-8")
    result: dict[str, Any] = {"name": "dpo", "population": simulated, "export": counts.to_dict(),
                              "test_rows": len(test_rows)}
    if not pairs:
        result["skipped"] = "no preference pairs: every shown suggestion was accepted, or nothing was shown"
        return result

    # 2. DPO on the pairs
    from finetune.dpo import dpo

    dpo(base, adapters / CURRENT, prefs, adapters / TUNED, cfg, overwrite=True)
    from core.artifacts import read_info

    info = read_info(adapters / TUNED)
    result["dpo"] = {k: info.get(k) for k in ("steps", "pairs_used", "dpo_loss_start", "dpo_loss", "reward_accuracy",
                                              "elapsed_s")}

    # 3. the other slice, before (current) and after (DPO), the same cursors and prompts
    server = server_app(base, adapters, threads=threads)
    try:
        with serve_in_thread(server) as server_url:
            before = asyncio.run(complete_all(test_rows, server_url, CURRENT, base))
            after = asyncio.run(complete_all(test_rows, server_url, TUNED, base))
    finally:
        server.state.server.engine.close()
    middles = [r["middle"] for r in test_rows]
    em = {arm: [M.exact_match(t, m) for t, m in zip(texts, middles, strict=True)]
          for arm, texts in (("before", before), ("after", after))}
    nan = float("nan")
    acc = {arm: [M.exact_match(t, m) if t else nan for t, m in zip(texts, middles, strict=True)]
           for arm, texts in (("before", before), ("after", after))}
    result["exact_match"] = {"before": M.mean(em["before"]), "after": M.mean(em["after"]),
                             "difference": M.paired_bootstrap(em["before"], em["after"], seed=seed).as_dict()}
    result["accepted_share_of_shown"] = {
        arm: _share_interval([v for v in acc[arm] if v == v], seed) for arm in ("before", "after")}
    result["accepted_share_of_shown"]["difference_shown_by_both"] = M.paired_bootstrap(
        acc["before"], acc["after"], seed=seed).as_dict()
    result["seconds"] = round(time.monotonic() - started, 1)
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", type=Path, required=True)
    ap.add_argument("--adapter", type=Path, required=True, help="the team's current adapter")
    ap.add_argument("--data", type=Path, required=True, help="dataset directory (its eval split is cut in two)")
    ap.add_argument("--population", type=int, default=200, help="cursors the simulated users complete")
    ap.add_argument("--test", type=int, default=200, help="cursors of the before/after comparison")
    ap.add_argument("--beta", type=float, default=0.1)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--max-steps", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--work", type=Path, default=None, help="keep the run's files here (default: a temp dir)")
    args = ap.parse_args(argv)
    cfg = DpoConfig(beta=args.beta, lr=args.lr, max_steps=args.max_steps, batch_size=args.batch_size, seed=args.seed,
                    threads=args.threads)
    result = run(args.base, args.adapter, args.data, population=args.population, test=args.test, cfg=cfg,
                 seed=args.seed, threads=args.threads, work=args.work)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
