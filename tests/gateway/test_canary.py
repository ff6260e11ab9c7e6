"""Canaries: the split is deterministic and near its share; the intervals match textbook values; through a running
gateway, the users of each arm get their arm's adapter, their adoption events (sent without an adapter, as the
language server sends them) count for that arm, and `decide` says wait, rollback or promote on scripted events
(applied under policy auto, reported for an admin under manual); the dashboard shows the canary."""

from __future__ import annotations

import json

import httpx
import pytest
import typer

from app import cli
from gateway import canary
from gateway.audit import rows as audit_rows
from gateway.registry import Registry
from gateway.registry_cli import app as adapters_app
from tests.gateway.conftest import wait_for
from tests.gateway.registry_helpers import fake_upstream, make_adapter_dir


def test_split_is_deterministic_and_near_the_share():
    users = [f"user{i}" for i in range(20000)]
    arm = [u for u in users if canary.in_candidate(7, u, 0.2)]
    assert arm == [u for u in users if canary.in_candidate(7, u, 0.2)]  # stable for the canary's life
    assert abs(len(arm) / len(users) - 0.2) < 0.01  # 3.5 standard errors
    other = {u for u in users if canary.in_candidate(8, u, 0.2)}
    assert 0.1 < len(other & set(arm)) / len(arm) < 0.3  # another canary draws another, independent arm
    assert set(arm) <= {u for u in users if canary.in_candidate(7, u, 0.5)}  # a larger share keeps the arm


def test_intervals_match_textbook_values():
    lo, hi = canary.wilson(8, 10)
    assert (round(lo, 4), round(hi, 4)) == (0.4902, 0.9433)  # Wilson (1927), as in Newcombe (1998) table I
    d, lo, hi = canary.newcombe(56, 70, 48, 80)
    assert (round(d, 4), round(lo, 4), round(hi, 4)) == (0.2, 0.0524, 0.3339)  # Newcombe (1998) example (a)
    assert canary.wilson(0, 0) is None and canary.newcombe(1, 2, 0, 0) is None


def test_verdict_waits_for_the_period_and_the_data():
    arm = {"shown": 10}
    figures = {"arms": {"candidate": arm, "current": arm},
               "difference": {"acceptance_rate": {"ci95": [-0.1, 0.05]}, "retained_chars_per_shown": {"ci95": [-1, 2]}}}
    assert canary.verdict(figures, now=50, ends_at=100, min_shown=5)[0] == "wait"
    assert canary.verdict(figures, now=150, ends_at=100, min_shown=50)[0] == "wait"
    assert canary.verdict(figures, now=150, ends_at=100, min_shown=5)[0] == "promote"
    figures["difference"]["retained_chars_per_shown"] = {"ci95": [-3, -0.5]}
    decision, why = canary.verdict(figures, now=150, ends_at=100, min_shown=5)
    assert decision == "rollback" and "retained_chars_per_shown" in why


@pytest.fixture
def adapters_cli(monkeypatch, capsys):
    root = typer.Typer()
    root.add_typer(adapters_app, name="adapters")
    monkeypatch.setattr(cli, "app", root)
    monkeypatch.setattr(cli, "_register", lambda: None)

    def run(db: str, *args: str) -> dict:
        code = cli.main(["adapters", *args, "--db", db, "--json"])
        out = capsys.readouterr()
        assert code == 0, out.err
        return json.loads(out.out)

    return run


def _post_events(http: httpx.Client, url: str, token: str, user: str, shown: int, accepted: int, kept: int) -> None:
    """`shown` suggestions, the first `accepted` accepted (40 characters), `kept` of them retained after 5 min;
    no `adapter` field: the gateway attributes them to what the user is routed to."""
    ev = [{"kind": "shown", "id": f"{user}-{i}", "chars": 40} for i in range(shown)]
    ev += [{"kind": "accepted", "id": f"{user}-{i}", "chars": 40} for i in range(accepted)]
    ev += [{"kind": "retained", "id": f"{user}-{i}", "chars": 40 if i < kept else 0, "after_s": 300}
           for i in range(accepted)]
    r = http.post(f"{url}/v1/events", json={"events": ev}, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text


def test_canary_routes_by_arm_and_decides_on_events(gateway_server, tmp_path, adapters_cli):
    serve = tmp_path / "serve"
    serve.mkdir()
    with fake_upstream(serve) as upstream, httpx.Client(timeout=30) as http:
        url, app = gateway_server((upstream,), adoption_events=True, auth_cache_s=3600.0, rate_limit_per_minute=10000)
        gw = app.state.gateway
        db = gw.cfg.database_url
        a = gw.accounts
        a.add_team("red")
        a.add_user("root", admin=True, password="dashboard-pass")
        users = [f"dev{i:02d}" for i in range(40)]
        for u in users:
            a.add_user(u)
            a.add_member("red", u)
        tokens = {u: a.create_token(u) for u in users}
        registry = Registry(gw.engine)
        for seed in (1, 2, 3):
            adapters_cli(db, "register", "red", "coder", "--adapter",
                         str(make_adapter_dir(tmp_path / f"out{seed}", seed=seed)), "--serve-dir", str(serve))
        registry.promote("red/coder@1")
        wait_for(lambda: {"red.coder.v1", "red.coder.v2", "red.coder.v3"} <= gw.pool.adapters(), what="adapters")
        for u in users:  # every token is checked (and cached for an hour) before the canary starts
            r = http.post(f"{url}/generate", json={"inputs": "x"}, headers={"Authorization": f"Bearer {tokens[u]}"})
            assert r.json()["generated_text"] == "red.coder.v1"

        # --- canary 1: red/coder@2 to half the team, policy auto; its users accept far less -> rollback ----------
        c1 = adapters_cli(db, "canary", "start", "red/coder@2", "--share", "0.5", "--minutes", "60", "--policy", "auto",
                          "--min-shown", "50")
        assert (c1["team"], c1["candidate"]["adapter_id"], c1["current"]["adapter_id"]) == (
            "red", "red.coder.v2", "red.coder.v1")
        arm = {u: canary.in_candidate(c1["id"], u, 0.5) for u in users}
        assert 10 <= sum(arm.values()) <= 30
        for u in users:  # the very next request of each user goes to their arm's adapter
            r = http.post(f"{url}/generate", json={"inputs": "x"}, headers={"Authorization": f"Bearer {tokens[u]}"})
            assert r.json()["generated_text"] == ("red.coder.v2" if arm[u] else "red.coder.v1")
        cand_user = next(u for u in users if arm[u])
        r = http.post(f"{url}/v1/completions", json={"prompt": "x"},  # OpenAI without `model`: routed alike
                      headers={"Authorization": f"Bearer {tokens[cand_user]}"})
        assert r.json()["choices"][0]["text"] == "red.coder.v2"
        info = http.get(f"{url}/info", headers={"Authorization": f"Bearer {tokens[cand_user]}"}).json()
        assert info["default_adapter"] == "red.coder.v2" and "red.coder.v2" in info["adapters"]
        for u in users:
            _post_events(http, url, tokens[u], u, shown=8, accepted=1 if arm[u] else 4, kept=1 if arm[u] else 3)
        out = adapters_cli(db, "canary", "decide", "red")
        assert out["decision"] == "wait" and "the period ends in" in out["reason"] and not out["applied"]
        n_cand = sum(arm.values())
        assert out["arms"]["candidate"]["shown"] == 8 * n_cand and out["arms"]["candidate"]["accepted"] == n_cand
        assert out["arms"]["current"]["accepted"] == 4 * (40 - n_cand)
        assert out["arms"]["candidate"]["retained_chars_per_shown"] == pytest.approx(40 / 8)
        status = registry.canary_status("red")
        decided = registry.canary_decide("red", now=status["ends_at"] + 1)
        assert decided["decision"] == "rollback" and decided["applied"], decided
        assert decided["difference"]["acceptance_rate"]["ci95"][1] < 0
        assert {v["ref"]: v["state"] for v in registry.versions("red")}["red/coder@2"] == "rolled_back"
        r = http.post(f"{url}/generate", json={"inputs": "x"}, headers={"Authorization": f"Bearer {tokens[cand_user]}"})
        assert r.json()["generated_text"] == "red.coder.v1"  # the candidate's users are back on the current

        # --- canary 2: red/coder@3, policy manual; both arms alike -> the rule says promote, an admin decides ----
        c2 = registry.canary_start("red/coder@3", share=0.3, minutes=60, policy="manual", min_shown=20)
        arm = {u: canary.in_candidate(c2["id"], u, 0.3) for u in users}
        for u in users:
            _post_events(http, url, tokens[u], u, shown=5, accepted=2, kept=2)
        status = registry.canary_status("red")
        manual = registry.canary_decide("red", now=status["ends_at"] + 1)
        assert manual["decision"] == "wait" and manual["verdict"] == "promote" and not manual["applied"]
        assert "policy manual" in manual["reason"] and "canary stop red --promote" in manual["reason"]
        assert manual["arms"]["candidate"]["shown"] == 5 * sum(arm.values())

        # the dashboard shows the running canary: both arms, intervals, rule and verdict, and the versions
        http.post(f"{url}/admin/login", data={"name": "root", "password": "dashboard-pass"})
        reg = http.get(f"{url}/admin/api/registry").json()
        shown = reg["canaries"][0]
        assert (shown["id"], shown["state"], shown["candidate"]["ref"]) == (c2["id"], "running", "red/coder@3")
        assert shown["arms"]["candidate"]["acceptance_rate_ci95"] and shown["difference"]["acceptance_rate"]["ci95"]
        assert shown["rule"] == canary.RULE and shown["verdict"] == "wait"  # the period runs for an hour yet
        assert reg["canaries"][1]["state"] == "rolled_back" and reg["canaries"][1]["verdict"] == "rollback"
        assert [v["ref"] for v in reg["versions"]] == ["red/coder@1", "red/coder@2", "red/coder@3"]
        page = http.get(f"{url}/admin").text
        assert 'id="registry"' in page and "loadRegistry" in page

        applied = registry.canary_decide("red", apply=True, now=status["ends_at"] + 1)
        assert applied["decision"] == "promote" and applied["applied"]
        states = {v["ref"]: v["state"] for v in registry.versions("red")}
        assert states == {"red/coder@1": "retired", "red/coder@2": "rolled_back", "red/coder@3": "current"}
        for u in users[:5]:
            r = http.post(f"{url}/generate", json={"inputs": "x"}, headers={"Authorization": f"Bearer {tokens[u]}"})
            assert r.json()["generated_text"] == "red.coder.v3"
        gw.audit.flush()
    # the audit names the adapter served and, during a canary, the arm
    routed = [r for r in audit_rows(gw.engine, kind="request") if r["route"] == "/generate" and r["detail"]]
    assert [json.loads(r["detail"])["arm"] for r in audit_rows(gw.engine, kind="request")
            if r["route"] == "/v1/completions"] == ["candidate"]
    assert {(r["adapter"], json.loads(r["detail"])["arm"]) for r in routed} == {
        ("red.coder.v2", "candidate"), ("red.coder.v1", "current")}
    assert len(routed) == 40  # one request per user during canary 1


def test_one_canary_per_team_on_sqlite_and_postgresql(db_url, tmp_path):
    from gateway.accounts import Accounts
    from gateway.db import open_database
    from gateway.events import AdoptionEvent, EventBatch, store_batch
    from gateway.routing import Router

    engine = open_database(db_url)
    a = Accounts(engine)
    a.add_team("red")
    for u in ("ann", "ben", "cat", "dan"):
        a.add_user(u)
        a.add_member("red", u)
    registry = Registry(engine)
    serve = tmp_path / "serve"
    serve.mkdir()
    for seed in (1, 2):
        registry.register("red", "coder", make_adapter_dir(tmp_path / f"o{seed}", seed=seed), serve)
    started = registry.canary_start("red/coder@1", min_shown=0)
    assert (started["share"], started["policy"], started["current"]["ref"]) == (0.2, "manual", None)  # defaults
    with pytest.raises(Exception, match="already has a canary running"):
        registry.canary_start("red/coder@2")
    with pytest.raises(Exception, match="has a canary running"):
        registry.promote("red/coder@2")
    router = Router(engine)
    for u in ("ann", "ben", "cat", "dan"):
        principal = a.authenticate(a.create_token(u))
        routed = router.current().default_for(principal)
        assert routed.adapter == ("red.coder.v1" if canary.in_candidate(started["id"], u, 0.2) else None)
        store_batch(engine, principal, EventBatch(events=[AdoptionEvent(kind="shown", id="s1", chars=9)]),
                    routed=routed)
    status = registry.canary_status("red")
    assert status["arms"]["candidate"]["shown"] + status["arms"]["current"]["shown"] == 4  # the base's arm counts
    promoted = registry.promote("red/coder@1")  # promoting the canary's candidate ends the canary
    assert promoted["outcome"] == "promoted" and promoted["current"]["ref"] == "red/coder@1"
    assert registry.canary_status("red")["state"] == "promoted"
    assert [(c["id"], c["state"]) for c in registry.canaries()] == [(started["id"], "promoted")]
    assert router.current().defaults["red"] == "red.coder.v1" and router.current().canaries == {}
    registry.promote("red/coder@2")
    assert registry.rollback("red")["current"]["ref"] == "red/coder@1"
    assert [v["state"] for v in registry.versions("red")] == ["current", "rolled_back"]
    engine.dispose()


@pytest.mark.e2e
def test_dashboard_draws_the_canary_in_a_real_browser(gateway_server, tmp_path):
    """The registry section in headless Chromium: both arms' figures as the JSON has them, the rule, the verdict."""
    import os
    import shutil
    import subprocess
    from pathlib import Path

    from gateway.events import AdoptionEvent, EventBatch, store_batch
    from tests.e2e.test_vscode import _find_chromium

    node_modules = Path(os.environ.get("INHOUSE_TEST_NODE_MODULES") or
                        Path(__file__).resolve().parents[2] / "vscode-extension" / "node_modules")
    if not shutil.which("node") or not (node_modules / "playwright-core").is_dir():
        pytest.skip("needs node and playwright-core (`make -C vscode-extension deps`)")
    chromium = _find_chromium()
    serve = tmp_path / "serve"
    serve.mkdir()
    with fake_upstream(serve) as upstream:
        url, app = gateway_server((upstream,), adoption_events=True)
        gw = app.state.gateway
        a = gw.accounts
        a.add_team("red")
        a.add_user("root", admin=True, password="dashboard-pass")
        users = [f"dev{i:02d}" for i in range(20)]
        for u in users:
            a.add_user(u)
            a.add_member("red", u)
        registry = Registry(gw.engine)
        for seed in (1, 2):
            registry.register("red", "coder", make_adapter_dir(tmp_path / f"out{seed}", seed=seed), serve)
        registry.promote("red/coder@1")
        started = registry.canary_start("red/coder@2", share=0.5, minutes=60, policy="manual", min_shown=10)
        for u in users:
            principal = a.authenticate(a.create_token(u))
            routed = gw.router.current().default_for(principal)
            accepted = 1 if routed.arm == "candidate" else 3
            ev = [AdoptionEvent(kind="shown", id=f"{u}-{i}", chars=30) for i in range(6)]
            ev += [AdoptionEvent(kind="accepted", id=f"{u}-{i}", chars=30) for i in range(accepted)]
            ev += [AdoptionEvent(kind="retained", id=f"{u}-{i}", chars=20, after_s=300) for i in range(accepted)]
            store_batch(gw.engine, principal, EventBatch(events=ev), routed=routed)
        status = registry.canary_status("red")
        spec = {"url": url, "admin": "root", "password": "dashboard-pass", "chromium": chromium,
                "nodeModules": str(node_modules), "shots": str(tmp_path / "shots"), "result": str(tmp_path / "r.json")}
        (tmp_path / "spec.json").write_text(json.dumps(spec))
        proc = subprocess.run(["node", str(Path(__file__).with_name("canary_dashboard.mjs")),
                               str(tmp_path / "spec.json")], capture_output=True, text=True, timeout=180, check=False)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    page = json.loads((tmp_path / "r.json").read_text())
    assert (page["canary"], page["team"]) == (str(started["id"]), "red")
    assert "red/coder@2 vs red/coder@1" in page["heading"] and "policy manual" in page["heading"]
    for arm in ("candidate", "current"):
        figures = status["arms"][arm]
        assert page["arms"][arm]["shown"] == str(figures["shown"])
        assert page["arms"][arm]["accepted"] == str(figures["accepted"])
        assert page["arms"][arm]["acceptance"].startswith(f"{100 * figures['acceptance_rate']:.1f}% [")
    diff = status["difference"]["acceptance_rate"]
    assert page["arms"]["difference"]["acceptance"] == (f"{diff['value']:.4f} [{diff['ci95'][0]:.4f}, "
                                                        f"{diff['ci95'][1]:.4f}]")
    assert page["verdict"] == "wait" and canary.RULE in page["text"]
    assert page["versions"] == {"red/coder@1": "current", "red/coder@2": "canary"}
    assert (tmp_path / "shots" / "registry.png").stat().st_size > 10000
