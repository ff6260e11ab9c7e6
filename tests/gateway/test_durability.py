"""`inhouse gateway` as a process: the CLI starts it, and a kill -9 in the middle of event writes loses no
event whose batch was acknowledged (SQLite in WAL mode with synchronous=FULL)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.launch import free_port
from gateway.accounts import Accounts
from gateway.db import open_database
from gateway.models import Event

ROOT = Path(__file__).resolve().parents[2]


def test_kill_9_mid_write_loses_no_acknowledged_event(tmp_path):
    db = f"sqlite:///{tmp_path / 'gateway.db'}"
    engine = open_database(db)
    accounts = Accounts(engine)
    accounts.add_user("alice")
    token = accounts.create_token("alice")
    port = free_port()
    log = (tmp_path / "gateway.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "gateway", "--db", db, "--port", str(port),
                             "--upstream", f"http://127.0.0.1:{free_port()}", "--adoption-events"],
                            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy(),
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    acknowledged: list[str] = []
    stop = threading.Event()

    def post_batches(worker: int) -> None:
        with httpx.Client(timeout=10) as http:
            for n in range(10_000):
                if stop.is_set():
                    return
                ids = [f"w{worker}b{n}e{i}" for i in range(20)]
                try:
                    r = http.post(f"{url}/v1/events", headers={"Authorization": f"Bearer {token}"},
                                  json={"events": [{"kind": "shown", "id": i, "chars": 5} for i in ids]})
                except httpx.HTTPError:
                    return  # the gateway is gone
                assert r.status_code == 200, r.text
                acknowledged.extend(ids)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (tmp_path / "gateway.log").read_text()
            try:
                if httpx.get(f"{url}/admin", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the gateway did not start"
            time.sleep(0.1)
        workers = [threading.Thread(target=post_batches, args=(w,)) for w in range(4)]
        for w in workers:
            w.start()
        while len(acknowledged) < 400:  # writes are under way
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        stop.set()
        for w in workers:
            w.join(10)
    finally:
        stop.set()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        log.close()
    engine.dispose()
    with Session(open_database(db)) as s:  # the database opens cleanly and holds every acknowledged event
        stored = set(s.scalars(select(Event.suggestion)))
    assert len(acknowledged) >= 400
    assert set(acknowledged) <= stored
