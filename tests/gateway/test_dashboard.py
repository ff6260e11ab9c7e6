"""The /admin dashboard in headless Chromium (playwright-core, as the VS Code e2e test drives it): sign in, read
the charts' numbers against seeded data, filter by team, revoke a token and see its next request refused.
Screenshots of every step are kept under the test's tmp dir (`shots/`)."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
NODE_MODULES = REPO / "vscode-extension" / "node_modules"


def _playwright() -> Path:
    if not shutil.which("node"):
        pytest.skip("the dashboard browser test needs Node 20+ (node on PATH)")
    if not (NODE_MODULES / "playwright-core").is_dir():
        proc = subprocess.run(["make", "-C", str(REPO / "vscode-extension"), "deps"], capture_output=True, text=True,
                              timeout=600, check=False)
        if proc.returncode != 0 or not (NODE_MODULES / "playwright-core").is_dir():
            pytest.skip(f"playwright-core cannot be installed (npm ci in vscode-extension): {proc.stderr[-300:]}")
    return NODE_MODULES


@pytest.mark.e2e
def test_dashboard_in_a_real_browser(model_server, gateway_server, tmp_path):
    from tests.e2e.test_vscode import _find_chromium

    chromium = _find_chromium()
    node_modules = _playwright()
    upstream = model_server()
    url, app = gateway_server((upstream,), adoption_events=True)
    gw = app.state.gateway
    a = gw.accounts
    a.add_user("root", admin=True, password="dashboard-pass")
    report = {"runs": {"base/psm": {"overall": {"exact_match": 0.125, "edit_similarity": 0.5},
                                    "by_kind": {"call": {"exact_match": 0.1, "edit_similarity": 0.4}}},
                       "tuned/psm": {"overall": {"exact_match": 0.25, "edit_similarity": 0.625},
                                     "by_kind": {"call": {"exact_match": 0.3, "edit_similarity": 0.7}}}},
              "headline": {"base_best_mode": "base/psm", "tuned_mode": "tuned/psm"}, "n": 8}
    for user, team, adapter in (("alice", "red", "team-a"), ("bob", "blue", "team-b")):
        a.add_user(user)
        a.add_team(team)
        a.add_adapter(adapter, json.dumps(report) if adapter == "team-a" else None)
        a.add_member(team, user)
        a.allow(team, adapter, default=True)
    tokens = {u: a.create_token(u) for u in ("alice", "bob")}
    now = time.time()
    seeded = {  # user: (adapter, shown, [(accepted chars, partial)], [(suggestion, after_s, retained chars)])
        "alice": ("team-a", 5, [(40, False), (10, True)], [(0, 30, 40), (0, 600, 30), (1, 600, 5)]),
        "bob": ("team-b", 3, [(20, False)], [(0, 600, 20)]),
    }
    with httpx.Client(timeout=60) as http:
        for user, (adapter, shown, accepted, retained) in seeded.items():
            ev = [{"kind": "shown", "id": f"s{i}", "chars": 50, "adapter": adapter, "language": "python",
                   "ts": now - 3600} for i in range(shown)]
            ev += [{"kind": "accepted", "id": f"s{i}", "chars": c, "partial": p, "adapter": adapter,
                    "language": "python", "ts": now - 3600} for i, (c, p) in enumerate(accepted)]
            ev += [{"kind": "retained", "id": f"s{i}", "after_s": t, "chars": c, "adapter": adapter,
                    "language": "python", "ts": now - 3000} for i, t, c in retained]
            assert http.post(f"{url}/v1/events", json={"events": ev},
                             headers={"Authorization": f"Bearer {tokens[user]}"}).status_code == 200
            r = http.post(f"{url}/generate", json={"inputs": "x = ", "parameters": {"max_new_tokens": 2}},
                          headers={"Authorization": f"Bearer {tokens[user]}"})
            assert r.status_code == 200
    gw.audit.flush()
    bob_id = next(t["id"] for t in a.list_tokens() if t["user"] == "bob")
    spec = {"url": url, "admin": "root", "password": "dashboard-pass", "team": "red", "revokeId": bob_id,
            "chromium": chromium, "nodeModules": str(node_modules), "shots": str(tmp_path / "shots"),
            "result": str(tmp_path / "result.json")}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    proc = subprocess.run(["node", str(Path(__file__).with_name("dashboard.mjs")), str(tmp_path / "spec.json")],
                          capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    res = json.loads((tmp_path / "result.json").read_text())
    assert res["wrongPassword"] is True
    # everyone: 8 shown, 3 accepted (37.5%), 70 accepted characters; 10 min retention (30+5+20)/(40+10+20)
    assert res["all"]["metrics"] == {"active_users": "2", "shown": "8", "accepted": "3", "acceptance_rate": "37.5%",
                                     "accepted_chars": "70", "retained_chars_600": "55", "retained_600": "78.6%"}
    assert res["all"]["kinds"] == {"call": "call: 10.0% → 30.0%"}
    assert res["all"]["usersPerDay"] == [2]
    assert res["all"]["quality"]["team-a"] == {"shown": "5", "acceptance": "40.0%", "retained": "70.0%"}
    assert res["all"]["service"][upstream]["requests"] == "2" and res["all"]["service"][upstream]["errors"] == "0"
    # team red only: alice's 5 shown, 2 accepted, 50 characters, (30+5)/50 kept after 10 min
    assert res["team"]["metrics"] == {"active_users": "1", "shown": "5", "accepted": "2", "acceptance_rate": "40.0%",
                                      "accepted_chars": "50", "retained_chars_600": "35", "retained_600": "70.0%"}
    assert res["team"]["service"][upstream]["requests"] == "1"
    assert res["afterRevoke"]["tokens"][str(bob_id)]["state"] == "revoked"
    assert res["all"]["audit"] > 0
    r = httpx.post(f"{url}/generate", json={"inputs": "x = ", "parameters": {"max_new_tokens": 2}},
                   headers={"Authorization": f"Bearer {tokens['bob']}"}, timeout=60)
    assert r.status_code == 401 and "revoked" in r.json()["error"]
    shots = sorted(p.name for p in (tmp_path / "shots").glob("*.png"))
    assert shots == ["01-login.png", "02-dashboard-all.png", "03-dashboard-team-red.png", "04-token-revoked.png"]
