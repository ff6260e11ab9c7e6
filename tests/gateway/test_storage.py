"""The gateway's storage, run the same on SQLite and on a real PostgreSQL: migrations, accounts, tokens,
events, audit and the dashboard's aggregates."""

from __future__ import annotations

import csv
import io
import json
import time

import pytest
from sqlalchemy import func, inspect, select
from sqlalchemy.orm import Session

from core.errors import ValidationError
from gateway import audit, reports
from gateway.accounts import Accounts, AuthError, NotFoundError
from gateway.db import open_database
from gateway.events import AdoptionEvent, EventBatch, store_batch
from gateway.models import AuditRow, Base, Event, User


@pytest.fixture
def accounts(db_url) -> Accounts:
    engine = open_database(db_url)
    yield Accounts(engine)
    engine.dispose()


def test_migrations_make_exactly_the_models_and_run_twice(db_url):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    engine = open_database(db_url)
    open_database(db_url).dispose()  # a second start finds the schema at head and changes nothing
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
        assert MigrationContext.configure(conn).get_current_revision() == "0003"
    assert set(inspect(engine).get_table_names()) >= {"users", "teams", "tokens", "audit", "events"}
    engine.dispose()


def test_sqlite_runs_in_wal_mode(tmp_path):
    engine = open_database(f"sqlite:///{tmp_path / 'g.db'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL


def _seed(a: Accounts) -> dict[str, str]:
    for name in ("alice", "bob"):
        a.add_user(name)
    a.add_user("root", admin=True, password="correct horse")
    for team in ("red", "blue"):
        a.add_team(team)
    a.add_adapter("team-a", json.dumps({"runs": {"base/psm": {"overall": {"exact_match": 0.1, "edit_similarity": 0.3},
                                                              "by_kind": {}},
                                                 "tuned/psm": {"overall": {"exact_match": 0.2, "edit_similarity": 0.5},
                                                               "by_kind": {}}}}))
    a.add_adapter("team-b")
    a.add_member("red", "alice")
    a.add_member("blue", "bob")
    a.allow("red", "team-a", default=True)
    a.allow("blue", "team-b", default=True)
    return {"alice": a.create_token("alice"), "bob": a.create_token("bob")}


def test_tokens_teams_and_access(accounts):
    tokens = _seed(accounts)
    alice = accounts.authenticate(tokens["alice"])
    assert alice.user == "alice" and alice.teams == (("red", ("team-a",), "team-a"),)
    assert alice.default_adapter() == ("red", "team-a")
    assert alice.team_for("team-a") == "red" and alice.team_for("team-b") is None
    with Session(accounts.engine) as s:  # only the hash is stored
        stored = [list(r) for r in s.execute(select(*Base.metadata.tables["tokens"].c))]
        assert tokens["alice"] not in json.dumps(stored)
    with pytest.raises(AuthError, match="unknown token"):
        accounts.authenticate(tokens["alice"] + "x")
    token_id = next(t["id"] for t in accounts.list_tokens() if t["user"] == "bob")
    accounts.revoke_token(token_id, actor="root")
    with pytest.raises(AuthError, match="revoked"):
        accounts.authenticate(tokens["bob"])
    short = accounts.create_token("alice", name="short", expires_in_days=1e-6)
    time.sleep(0.2)
    with pytest.raises(AuthError, match="expired"):
        accounts.authenticate(short)
    accounts.disable_user("alice")
    with pytest.raises(AuthError, match="disabled"):
        accounts.authenticate(tokens["alice"])
    assert accounts.check_login("root", "correct horse") == "root"
    assert accounts.check_login("root", "wrong") is None and accounts.check_login("alice", "x") is None
    admin_rows = audit.rows(accounts.engine, kind="admin")
    assert [r["route"] for r in admin_rows][:3] == ["users.disable", "tokens.create", "tokens.revoke"]
    assert next(r for r in admin_rows if r["route"] == "tokens.revoke")["actor"] == "root"


BAD_NAMES = ["x'; DROP TABLE users;--", "a b", "", "ä", "x" * 65, "-lead", 'q"uote', "semi;colon", "back\\slash",
             "per%cent", "Robert'); DROP TABLE teams;--"]


def test_bad_names_are_refused_and_nothing_is_stored(accounts):
    for name in BAD_NAMES:
        with pytest.raises(ValidationError, match="`user` must be"):
            accounts.add_user(name)
        with pytest.raises(ValidationError, match="`team` must be"):
            accounts.add_team(name)
        with pytest.raises(ValidationError, match="`adapter` must be"):
            accounts.add_adapter(name)
    with Session(accounts.engine) as s:
        assert s.scalar(select(func.count()).select_from(User)) == 0
        assert s.scalar(select(func.count()).select_from(AuditRow)) == 0


def test_duplicates_and_unknowns_are_clear_errors(accounts):
    accounts.add_user("alice")
    with pytest.raises(ValidationError, match="user 'alice' already exists"):
        accounts.add_user("alice")
    with pytest.raises(NotFoundError, match="no team named 'red'"):
        accounts.add_member("red", "alice")
    accounts.add_team("red")
    with pytest.raises(NotFoundError, match="no adapter named 'nope'"):
        accounts.allow("red", "nope")


def _ev(kind: str, sid: str, **kw) -> AdoptionEvent:
    return AdoptionEvent(kind=kind, id=sid, **kw)


def test_events_aggregate_exactly(accounts):
    tokens = _seed(accounts)
    alice, bob = accounts.authenticate(tokens["alice"]), accounts.authenticate(tokens["bob"])
    now = time.time()
    day0 = now - 86400
    a = dict(language="python", adapter="team-a", repo="acme/web")
    store_batch(accounts.engine, alice, EventBatch(events=[
        _ev("shown", "s1", ts=day0, chars=40, latency_ms=120, **a), _ev("accepted", "s1", ts=day0, chars=40, **a),
        _ev("retained", "s1", ts=day0 + 30, chars=40, after_s=30, **a),
        _ev("retained", "s1", ts=day0 + 600, chars=30, after_s=600, **a),
        _ev("shown", "s2", ts=now, chars=10, **a), _ev("accepted", "s2", ts=now, chars=4, partial=True, **a),
        _ev("retained", "s2", ts=now, chars=2, after_s=30, **a),
        _ev("shown", "s3", ts=now, chars=7, **a), _ev("dismissed", "s3", ts=now, chars=7, **a)]), now=now)
    b = dict(language="go", adapter="team-b", repo="acme/api")
    store_batch(accounts.engine, bob, EventBatch(events=[
        _ev("shown", "s1", ts=now, chars=20, **b), _ev("accepted", "s1", ts=now, chars=20, **b),
        _ev("retained", "s1", ts=now, chars=5, after_s=30, **b)]), now=now)
    f = reports.Filters(since=now - 7 * 86400, until=now + 1)
    s = reports.summary(accounts.engine, f)["adoption"]
    assert (s["shown"], s["accepted"], s["dismissed"], s["accepted_partial"]) == (4, 3, 1, 1)
    assert s["acceptance_rate"] == 0.75 and s["accepted_chars"] == 64 and s["active_users"] == 2
    assert s["active_users_per_day"] == [{"day": int(day0 // 86400), "users": 1},
                                         {"day": int(now // 86400), "users": 2}]
    curve = {c["after_s"]: c for c in s["retention"]}
    # 30 s: alice s1 40/40, alice s2 2/4, bob s1 5/20 -> 47/64; 10 min: alice s1 30/40
    assert (curve[30]["retained_chars"], curve[30]["accepted_chars"], curve[30]["share"]) == (47, 64, round(47 / 64, 4))
    assert (curve[600]["retained_chars"], curve[600]["accepted_chars"], curve[600]["share"]) == (30, 40, 0.75)
    assert curve[120]["share"] is None
    red = reports.summary(accounts.engine, reports.Filters(since=f.since, until=f.until, team="red"))
    assert (red["adoption"]["shown"], red["adoption"]["accepted"], red["adoption"]["active_users"]) == (3, 2, 1)
    go = reports.summary(accounts.engine, reports.Filters(since=f.since, until=f.until, language="go"))["adoption"]
    assert (go["shown"], go["accepted_chars"]) == (1, 20)
    q = {row["adapter"]: row for row in red["quality"]}
    assert q["team-a"]["exam"]["tuned"]["em"] == 0.2 and q["team-a"]["exam"]["base"]["es"] == 0.3
    assert q["team-a"]["live"]["acceptance_rate"] == round(2 / 3, 4) and q["team-b"]["exam"] is None
    assert reports.filter_options(accounts.engine)["team"] == ["blue", "red"]


def test_event_outside_the_time_window_stores_nothing(accounts):
    tokens = _seed(accounts)
    alice = accounts.authenticate(tokens["alice"])
    batch = EventBatch(events=[_ev("shown", "s1", chars=3), _ev("shown", "s2", ts=1.0, chars=3)])
    with pytest.raises(ValidationError, match=r"`events.1.ts` must be within the last 7 days"):
        store_batch(accounts.engine, alice, batch)
    with Session(accounts.engine) as s:
        assert s.scalar(select(func.count()).select_from(Event)) == 0


def test_audit_writer_and_export(accounts):
    writer = audit.AuditWriter(accounts.engine)
    for i in range(300):
        writer.add(ts=1000.0 + i, kind="request", actor="alice", team="red", adapter="team-a", route="/generate",
                   status=200 if i % 10 else 429, prompt_tokens=5, generated_tokens=i, latency_ms=float(i),
                   upstream="http://127.0.0.1:1", detail=None)
    writer.flush()
    writer.close()
    assert writer.written == 300
    rows = list(csv.DictReader(io.StringIO(audit.export(accounts.engine, "csv", kind="request"))))
    assert len(rows) == 300 and rows[0]["generated_tokens"] == "0" and rows[-1]["latency_ms"] == "299.0"
    data = json.loads(audit.export(accounts.engine, "json", since=1290.0))
    assert [r["generated_tokens"] for r in data] == list(range(290, 300))
    svc = reports.service(accounts.engine, reports.Filters(since=0, until=2000))
    assert svc[0]["requests"] == 300 and svc[0]["rate_limited"] == 30 and svc[0]["errors"] == 0
    ok = sorted(float(i) for i in range(300) if i % 10)
    assert svc[0]["p50_ms"] == ok[len(ok) // 2 - 1] or svc[0]["p50_ms"] == ok[(len(ok) + 1) // 2 - 1]
