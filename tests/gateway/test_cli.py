"""`inhouse admin ...` end to end through the CLI's main (exit codes, messages, what lands in the database),
and `inhouse gateway` / `inhouse admin` registered on the real command line."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import pytest
import typer

from app import cli
from gateway.accounts import Accounts
from gateway.cli import app as admin_app
from gateway.db import open_database


@pytest.fixture
def admin(monkeypatch, tmp_path, capsys):
    """admin(*args) -> (exit code, stdout, stderr) of `inhouse admin ARGS --db sqlite:///tmp/g.db`."""
    monkeypatch.chdir(tmp_path)
    root = typer.Typer()
    root.add_typer(admin_app, name="admin")
    monkeypatch.setattr(cli, "app", root)
    monkeypatch.setattr(cli, "_register", lambda: None)
    db = f"sqlite:///{tmp_path / 'g.db'}"

    def run(*args: str) -> tuple[int, str, str]:
        code = cli.main(["admin", *args, "--db", db])
        out = capsys.readouterr()
        return code, out.out, out.err

    run.db = db  # type: ignore[attr-defined]
    return run


def test_admin_commands_manage_users_teams_tokens_and_export_the_audit(admin, tmp_path):
    pw = tmp_path / "pw"
    pw.write_text("a long password\n")
    for args in (("users", "add", "alice"), ("users", "add", "root", "--admin", "--password-file", str(pw)),
                 ("teams", "add", "red"), ("teams", "add-member", "red", "alice"),
                 ("adapters", "add", "team-a"), ("teams", "allow", "red", "team-a", "--default")):
        code, out, err = admin(*args)
        assert code == 0, err
    code, token, _ = admin("tokens", "create", "alice", "--expires-days", "30")
    assert code == 0 and token.strip().startswith("ih_")
    accounts = Accounts(open_database(admin.db))
    assert accounts.authenticate(token.strip()).teams == (("red", ("team-a",), "team-a"),)
    assert accounts.check_login("root", "a long password") == "root"
    code, out, _ = admin("teams", "list", "--json")
    assert json.loads(out) == [{"name": "red", "default_adapter": "team-a", "adapters": ["team-a"],
                                "members": ["alice"]}]
    code, out, _ = admin("tokens", "list", "--json")
    listed = json.loads(out)
    assert [t["user"] for t in listed] == ["alice"] and token.strip() not in out
    assert admin("tokens", "revoke", str(listed[0]["id"]))[0] == 0
    assert admin("audit", "export", "--format", "csv", "--out", str(tmp_path / "audit.csv"))[0] == 0
    rows = list(csv.DictReader(io.StringIO((tmp_path / "audit.csv").read_text())))
    assert [r["route"] for r in rows][-2:] == ["tokens.create", "tokens.revoke"]
    assert all(r["actor"].startswith("cli:") for r in rows)
    assert token.strip() not in (tmp_path / "audit.csv").read_text()
    assert not list(tmp_path.glob(".audit.csv.partial"))


@pytest.mark.parametrize("args, message", [
    (("users", "add", "x'; DROP TABLE users;--"), "`user` must be 1-64 letters"),
    (("users", "add", "root", "--admin"), "an admin needs a password"),
    (("teams", "add-member", "nobody", "alice"), "no user named 'alice'"),
    (("tokens", "revoke", "42"), "no token with id 42"),
    (("audit", "export", "--format", "xml"), "`--format` must be csv or json"),
])
def test_admin_bad_input_is_one_clear_line_and_exit_2(admin, args, message):
    code, out, err = admin(*args)
    assert code == 2 and message in err and "Traceback" not in err
    assert Accounts(open_database(admin.db)).list_users() == []


def test_gateway_and_admin_are_on_the_command_line():
    proc = subprocess.run([sys.executable, "-m", "app.cli", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "gateway" in proc.stdout and "admin" in proc.stdout
