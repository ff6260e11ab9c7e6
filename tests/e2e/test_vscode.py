"""End-to-end: the packaged VS Code extension in a real VS Code (code-server from npm, headless Debian Chromium
driven by playwright-core), talking to the real `inhouse lsp` and the embedded server with the tiny model.

Builds what it needs itself (`make -C vscode-extension build`, code-server into .cache/code-server), so a fresh
clone runs it cold; both stay cached for the next run. Skips only when Chromium is missing and cannot be
installed. Screenshots of every step land in tmp_path/shots (and out/e2e-screenshots/ when
INHOUSE_KEEP_SCREENSHOTS is set). The browser side is vscode-extension/e2e/e2e.mjs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest

from core.launch import serve_subprocess, stop_group
from core.launch import free_port


REPO = Path(__file__).resolve().parents[2]
EXT_DIR = REPO / "vscode-extension"
HARNESS = EXT_DIR / "e2e"
CODE_SERVER_DIR = REPO / ".cache" / "code-server"
NPM_CACHE = REPO / ".cache" / "npm"
KEEP_DIR = REPO / "out" / "e2e-screenshots"

# What the rewired tiny model says after any FIM prompt (valid Python and TypeScript at both cursors).
GHOST = "(radius ** 2) * 3.14"
PY_SOURCE = "def circle_area(radius):\n    return \n\n\nprint(circle_area(2.0))\n"
TS_SOURCE = (
    "export function circleArea(radius: number): number {\n"
    "  const area = \n"
    "  return area;\n"
    "}\n"
)


@dataclass(frozen=True)
class Case:
    """A file of the workspace and the cursor (1-based line and column) where ghost text is expected."""

    name: str
    file: str
    source: str
    line: int
    column: int

    @property
    def offset(self) -> int:
        lines = self.source.split("\n")
        return sum(len(x) + 1 for x in lines[: self.line - 1]) + self.column - 1


CASES = (
    Case("python", "circle.py", PY_SOURCE, line=2, column=12),
    Case("typescript", "circle.ts", TS_SOURCE, line=2, column=16),
)
# accepted one word at a time (Ctrl+Right) instead of with Tab
PARTIAL = Case("partial", "partial.py", PY_SOURCE, line=2, column=12)


def _wait_http(url: str, timeout_s: float, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{proc.args[0]} exited with {proc.returncode} before {url} answered:\n{_tail(log)}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.25)
    pytest.fail(f"{url} did not answer within {timeout_s:.0f} s:\n{_tail(log)}")


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no {path})"


def _run(cmd: list[str], log: Path, timeout_s: float, env: dict[str, str] | None = None) -> None:
    with log.open("ab") as out:
        proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, timeout=timeout_s, env=env, check=False)
    if proc.returncode != 0:
        pytest.fail(f"`{' '.join(cmd)}` failed ({proc.returncode}):\n{_tail(log)}")


def _find_chromium() -> str:
    """Debian's Chromium; installed with apt when missing and possible, else the test skips."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    why = "not root, cannot apt-get install chromium"
    if os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        proc = subprocess.run(
            "apt-get install -y -q --no-install-recommends chromium || "
            "(apt-get update -qq && apt-get install -y -q --no-install-recommends chromium)",
            shell=True, capture_output=True, text=True, env=env, timeout=240, check=False,
        )
        found = shutil.which("chromium")
        if found:
            return found
        why = f"apt-get install chromium failed: {(proc.stderr or proc.stdout).strip().splitlines()[-1:]}"
    pytest.skip(f"Chromium is not installed and cannot be installed here ({why}); the VS Code e2e test needs it")


@dataclass
class _Job:
    """A setup command running in the background (its own session, so it can be stopped with its children)."""

    name: str
    proc: subprocess.Popen
    log: Path
    started: float
    ended: float | None = None

    def watch(self) -> None:
        threading.Thread(target=self._note_end, daemon=True).start()

    def _note_end(self) -> None:
        self.proc.wait()
        self.ended = time.monotonic()

    def wait(self, timeout_s: float) -> float:
        """Seconds the command ran; fails the test with the log's tail if it failed or overran."""
        try:
            self.proc.wait(timeout=max(1.0, timeout_s))
        except subprocess.TimeoutExpired:
            stop_group(self.proc)
            pytest.fail(f"{self.name} did not finish in time:\n{_tail(self.log)}")
        if self.proc.returncode != 0:
            pytest.fail(f"{self.name} failed ({self.proc.returncode}):\n{_tail(self.log)}")
        return (self.ended or time.monotonic()) - self.started


@dataclass(frozen=True)
class Toolchain:
    chromium: str
    build: _Job      # make -C vscode-extension build: npm ci + tsc + the .vsix
    install: _Job    # code-server 4.100.3 into .cache/code-server


def _start(name: str, cmd: list[str], log: Path) -> _Job:
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    job = _Job(name, proc, log, time.monotonic())
    job.watch()
    return job


@pytest.fixture(scope="session")
def vscode_toolchain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Toolchain]:
    """Starts building the .vsix and installing code-server in the background (both cached between runs),
    so a cold first run overlaps them with the model and server setup."""
    chromium = _find_chromium()
    for tool in ("node", "npm", "make"):
        if not shutil.which(tool):
            pytest.fail(f"the VS Code e2e test needs {tool} on PATH (Node 20+ with npm, and make)")
    logs = tmp_path_factory.mktemp("vscode-toolchain")
    build = _start("make -C vscode-extension build", ["make", "-C", str(EXT_DIR), "build"], logs / "build.log")
    install = _start("install-code-server.sh",
                     [str(HARNESS / "install-code-server.sh"), str(CODE_SERVER_DIR), str(NPM_CACHE)],
                     logs / "install-code-server.log")
    try:
        yield Toolchain(chromium, build, install)
    finally:
        for job in (build, install):
            stop_group(job.proc)


@pytest.fixture
def timings() -> Iterator[dict[str, float]]:
    data: dict[str, float] = {}
    yield data
    print("\nvscode e2e timings (s): " + ", ".join(f"{k}={v:.1f}" for k, v in data.items()))


def build_ghost_model(tiny_dir: Path, out_dir: Path, text: str) -> Path:
    """The tiny random model rewired to answer `text` after `<fim_middle>` whatever the prompt (greedy).

    A random model with tied embeddings repeats its last token: the final hidden state is closest to the
    embedding of the token it just read. With an untied head whose row for token chain[i+1] is the embedding of
    chain[i] (a permutation of the rows), the argmax steps along <fim_middle> -> text's tokens -> <|endoftext|>.
    """
    from safetensors.torch import load_file, save_file
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tiny_dir / "tokenizer.json"))
    chain = [tok.token_to_id("<fim_middle>"), *tok.encode(text).ids, tok.token_to_id("<|endoftext|>")]
    assert len(set(chain)) == len(chain), f"{text!r} repeats a token of the tiny tokenizer: {chain}"
    tensors = load_file(str(tiny_dir / "model.safetensors"))
    embeddings = tensors["model.embed_tokens.weight"]
    rows = list(range(embeddings.shape[0]))
    for prev, nxt in zip(chain, chain[1:]):
        rows[nxt] = prev
    rows[chain[0]] = chain[-1]
    tensors["lm_head.weight"] = embeddings[rows].clone()
    out_dir.mkdir(parents=True)
    for f in tiny_dir.iterdir():
        if f.is_file() and f.name not in ("model.safetensors", "config.json"):
            shutil.copy(f, out_dir / f.name)
    config = json.loads((tiny_dir / "config.json").read_text())
    config["tie_word_embeddings"] = False
    (out_dir / "config.json").write_text(json.dumps(config, indent=2))
    # It answers right after <fim_middle>: its completion profile is PSM (the server reports it, the editor uses it).
    info = json.loads((tiny_dir / "inhouse.json").read_text())
    info["profile"] = {**info["profile"], "order": "psm", "heal": False}
    (out_dir / "inhouse.json").write_text(json.dumps(info, indent=2))
    save_file(tensors, str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    return out_dir


@pytest.fixture(scope="module")
def ghost_model_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_ghost_model(tiny_model_dir, tmp_path_factory.mktemp("ghost") / "model", GHOST)


@pytest.fixture
def embedded_server(ghost_model_dir: Path, tmp_path: Path) -> Iterator[str]:
    """`inhouse serve` with the rewired tiny model on a free port (greedy decoding: deterministic output)."""
    with serve_subprocess(ghost_model_dir, tmp_path / "serve.log", args=["--model-id", "tiny-ghost"]) as url:
        yield url


def _server_command(workspace: Path) -> str | None:
    """How the extension will find `inhouse lsp`: by default the way a user's checkout does, through the
    workspace's .venv/bin/inhouse (a link to this venv's console script, no setting); INHOUSE_E2E_SERVER_COMMAND
    or a venv without the script sets `inhouse.server.command` instead. Returns the setting, or None."""
    if os.environ.get("INHOUSE_E2E_SERVER_COMMAND"):
        return os.environ["INHOUSE_E2E_SERVER_COMMAND"]
    script = Path(sys.executable).parent / "inhouse"
    if not os.access(script, os.X_OK):
        return f"{sys.executable} -m app.cli lsp"
    (workspace / ".venv" / "bin").mkdir(parents=True)
    (workspace / ".venv" / "bin" / "inhouse").symlink_to(script)
    return None


def _write_user_config(user_dir: Path, backend_url: str, tiny_model_dir: Path, server_command: str | None) -> None:
    user_dir.mkdir(parents=True, exist_ok=True)
    settings = json.loads((HARNESS / "config" / "settings.json").read_text())
    settings.update({
        "inhouse.backendUrl": backend_url,
        "inhouse.maxTokens": 24,
        "inhouse.tokenizer": str(tiny_model_dir / "tokenizer.json"),
    })
    if server_command is not None:
        settings["inhouse.server.command"] = server_command
    (user_dir / "settings.json").write_text(json.dumps(settings, indent=2))
    shutil.copy(HARNESS / "config" / "keybindings.json", user_dir / "keybindings.json")


def _extension_log(user_data_dir: Path) -> str:
    logs = sorted(user_data_dir.glob("logs/**/*inhouse*.log"))
    return "\n".join(p.read_text(errors="replace") for p in logs)


def _collapse(text: str) -> str:
    return " ".join(text.split())


def test_extension_syncs_every_server_language() -> None:
    """The extension sends the server the documents of every language core/languages.toml knows."""
    from core.languages import all_languages

    source = (EXT_DIR / "src" / "settings.ts").read_text()
    block = re.search(r"SERVER_LANGUAGES[^=]*=\s*Object\.freeze\(\[(.*?)\]\)", source, re.S)
    assert block, "SERVER_LANGUAGES not found in vscode-extension/src/settings.ts"
    synced = set(re.findall(r"'([^']+)'", block.group(1)))
    missing = {lang.id for lang in all_languages()} - synced
    assert not missing, f"vscode-extension/src/settings.ts SERVER_LANGUAGES lacks {sorted(missing)}"


@pytest.mark.e2e
@pytest.mark.timeout(420)
def test_vscode_ghost_text_accept_save_and_status(vscode_toolchain: Toolchain, tmp_path: Path, embedded_server: str,
                                                  ghost_model_dir: Path, timings: dict[str, float]) -> None:
    t0 = time.monotonic()
    chromium = vscode_toolchain.chromium
    logs = tmp_path / "logs"
    logs.mkdir()

    # 1. the .vsix (npm ci + tsc + vsce, offline) and code-server, started by the fixture, cached between runs
    timings["build_vsix"] = vscode_toolchain.build.wait(330)
    vsix = EXT_DIR / "dist" / f"inhouse-{json.loads((EXT_DIR / 'package.json').read_text())['version']}.vsix"
    assert vsix.is_file(), f"make build made no {vsix}"
    timings["install_code_server"] = vscode_toolchain.install.wait(330)
    code_server = CODE_SERVER_DIR / "node_modules" / ".bin" / "code-server"
    timings["waited_for_setup"] = time.monotonic() - t0

    # 2. an isolated VS Code profile with the packaged extension installed from the .vsix
    home, tmp = tmp_path / "home", tmp_path / "tmp"
    user_data, extensions, workspace, shots = (tmp_path / "user-data", tmp_path / "extensions",
                                               tmp_path / "workspace", tmp_path / "shots")
    for d in (home, tmp, user_data, extensions, workspace, shots):
        d.mkdir()
    env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"),
           "XDG_DATA_HOME": str(home / ".local" / "share"), "XDG_CACHE_HOME": str(home / ".cache"),
           "TMPDIR": str(tmp)}
    env.pop("VSCODE_IPC_HOOK_CLI", None)
    # the language server inherits this: a busy 2-core machine can take more than the default 5 s per answer
    env["INHOUSE_LSP_TIMEOUT_S"] = "30"
    cs_config = tmp_path / "code-server.yaml"
    cs_config.write_text("auth: none\ncert: false\n")
    server_command = _server_command(workspace)
    _write_user_config(user_data / "User", embedded_server, ghost_model_dir, server_command)
    t = time.monotonic()
    _run([str(code_server), "--config", str(cs_config), "--user-data-dir", str(user_data),
          "--extensions-dir", str(extensions), "--install-extension", str(vsix)],
         logs / "install-extension.log", 120, env=env)
    installed = [p.name for p in extensions.iterdir() if p.is_dir()]
    assert any(n.startswith("inhouse.inhouse-") for n in installed), f"extension not installed: {installed}"
    timings["install_vsix"] = time.monotonic() - t
    for case in (*CASES, PARTIAL):
        (workspace / case.file).write_text(case.source)

    # 3. code-server on 127.0.0.1, then the browser side
    port = free_port()
    cs_log = logs / "code-server.log"
    t = time.monotonic()
    with cs_log.open("wb") as out:
        cs = subprocess.Popen(
            [str(code_server), "--config", str(cs_config), "--bind-addr", f"127.0.0.1:{port}", "--auth", "none",
             "--disable-telemetry", "--disable-update-check", "--disable-workspace-trust",
             "--disable-getting-started-override", "--user-data-dir", str(user_data),
             "--extensions-dir", str(extensions)],
            cwd=workspace, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        _wait_http(f"http://127.0.0.1:{port}/healthz", 60, cs, cs_log)
        timings["code_server_up"] = time.monotonic() - t
        spec = {
            "url": f"http://127.0.0.1:{port}/?folder={quote(str(workspace))}",
            "workspace": str(workspace), "shots": str(shots), "result": str(tmp_path / "result.json"),
            "tmp": str(tmp), "chromium": chromium, "readyTimeoutMs": 90000, "ghostTimeoutMs": 45000,
            "cases": [{"name": c.name, "file": c.file, "line": c.line, "column": c.column} for c in CASES],
            "partial": {"name": PARTIAL.name, "file": PARTIAL.file, "line": PARTIAL.line, "column": PARTIAL.column},
            "brokenServerCommand": str(tmp_path / "no-such-dir" / "inhouse") + " lsp",
        }
        (tmp_path / "spec.json").write_text(json.dumps(spec, indent=2))
        t = time.monotonic()
        browser = subprocess.run(["node", str(HARNESS / "e2e.mjs"), str(tmp_path / "spec.json")], cwd=HARNESS,
                                 env=env, capture_output=True, text=True, timeout=200, check=False)
        timings["browser"] = time.monotonic() - t
    finally:
        stop_group(cs)
        if os.environ.get("INHOUSE_KEEP_SCREENSHOTS"):
            shutil.rmtree(KEEP_DIR, ignore_errors=True)
            shutil.copytree(shots, KEEP_DIR)
    timings["test_body"] = time.monotonic() - t0
    timings["total_with_fixtures"] = time.monotonic() - vscode_toolchain.build.started

    # 4. what happened
    (logs / "browser.log").write_text(browser.stdout + browser.stderr)
    ext_log = _extension_log(user_data)
    (logs / "extension.log").write_text(ext_log)
    if not (tmp_path / "result.json").is_file():
        pytest.fail(f"the browser side wrote no result ({browser.returncode}):\n{browser.stdout}\n{browser.stderr}")
    result = json.loads((tmp_path / "result.json").read_text())
    context = (f"\nbrowser: {browser.stdout[-3000:]}\n{browser.stderr[-2000:]}\nextension log:\n{ext_log[-4000:]}"
               f"\nscreenshots: {shots}")
    assert result["ok"], f"e2e failed: {result['error']}{context}"
    assert result["status"]["ready"].startswith("inhouse: ready"), result["status"]
    with urllib.request.urlopen(f"{embedded_server}/info", timeout=5) as resp:
        model_id = json.loads(resp.read())["model_id"]
    assert model_id in result["status"]["ready"], f"model {model_id!r} not in the status bar: {result['status']}"

    for case, got in zip(CASES, result["cases"], strict=True):
        ghost = got["ghost"]
        shown = "\n".join([ghost["inline"], *ghost["lines"]])
        assert shown.strip(), f"{case.file}: empty ghost text {ghost}"
        saved = (workspace / case.file).read_text()
        assert saved == got["saved"]
        assert got["dirtyAfterSave"] == 0, f"{case.file}: editor still dirty after Ctrl+S"
        before, after = case.source[: case.offset], case.source[case.offset:]
        assert saved.startswith(before) and saved.endswith(after) and len(saved) > len(case.source), (
            f"{case.file}: the accepted text is not at the cursor:\n{saved!r}")
        inserted = saved[len(before): len(saved) - len(after)]
        assert _collapse(inserted) == _collapse(shown), (
            f"{case.file}: saved {inserted!r} but the ghost text showed {shown!r}")
        assert inserted == GHOST, f"{case.file}: inserted {inserted!r}, the model says {GHOST!r}"

    assert result["toggle"]["off"].startswith("inhouse: disabled"), result["toggle"]
    assert result["toggle"]["ghostWhileOff"] is None, f"ghost text while disabled: {result['toggle']}"
    assert result["toggle"]["on"].startswith("inhouse: ready"), result["toggle"]
    assert ext_log.count("sending inhouse.accepted (full") >= len(CASES), f"no acceptance reports:{context}"
    assert ext_log.count("inhouse.accepted acknowledged by the server") >= len(CASES), context

    # one word accepted with Ctrl+Right: a strict prefix of the suggestion lands, reported as a partial accept
    saved = (workspace / PARTIAL.file).read_text()
    before, after = PARTIAL.source[: PARTIAL.offset], PARTIAL.source[PARTIAL.offset:]
    assert saved == result["partial"]["saved"] and saved.startswith(before) and saved.endswith(after), saved
    word = saved[len(before): len(saved) - len(after)]
    assert word and GHOST.startswith(word) and word != GHOST, f"Ctrl+Right inserted {word!r} of {GHOST!r}"
    assert f"sending inhouse.accepted (partial, {len(word)} chars)" in ext_log, f"no partial accept report:{context}"

    # a wrong inhouse.server.command: one notification naming the command and the fix, status bar says so
    broken = result["broken"]
    assert broken["status"].startswith("inhouse: server not running"), broken
    assert len(broken["toasts"]) == 1, f"expected one message, got {broken['toasts']}"
    assert "no-such-dir/inhouse` was not found" in broken["toasts"][0], broken["toasts"]
    assert "inhouse.server.command" in broken["toasts"][0] and "Fix:" in broken["toasts"][0], broken["toasts"]
    assert "language server started" in ext_log, context
    if server_command is None:
        assert "lsp (from workspace-venv)" in ext_log, f"the workspace's .venv/bin/inhouse was not used:{context}"
    assert len(list(shots.glob("*.png"))) >= 4 + 4 * len(CASES)


def test_extension_unit_tests() -> None:
    """The extension's own unit tests (mocha: settings mapping, status state machine, command lookup, accept
    tracking) as part of the pytest run; kept after the e2e test so a cold run installs node_modules once."""
    for tool in ("node", "npm", "make"):
        if not shutil.which(tool):
            pytest.fail(f"the extension's unit tests need {tool} on PATH (Node 20+ with npm, and make)")
    proc = subprocess.run(["make", "-C", str(EXT_DIR), "test"], capture_output=True, text=True, timeout=300,
                          check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"make -C vscode-extension test failed:\n{out[-4000:]}"
    passing = re.search(r"(\d+) passing", out)
    assert passing and int(passing.group(1)) >= 50, f"unexpected mocha output:\n{out[-2000:]}"
    assert "failing" not in out, out[-4000:]
