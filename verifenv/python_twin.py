"""The software twin (`--lang python`): a pytest suite for a Python module, model-written tests kept on evidence.

Reads the public API (pyapi.py), writes one smoke test per public callable with arguments built from the type
hints, and with --fill asks the model (core.client + the completion pipeline) for a behaviour test per
callable. A model test is kept only if it parses, passes `python_runs` runs in a row and adds line coverage
(coverage.py) over the suite kept so far; every decision lands in reports/python_twin.json.
"""

from __future__ import annotations

import ast
import asyncio
import json
import logging
import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.artifacts import write_json_atomic
from core.errors import InhouseError, ValidationError
from verifenv import pyapi
from verifenv.config import VerifEnvConfig
from verifenv.process import run as run_process

if TYPE_CHECKING:
    from core.client import ClientConfig

log = logging.getLogger(__name__)

_SAMPLES = {"int": "1", "float": "1.0", "str": "'a'", "bool": "True", "bytes": "b'a'", "list": "[]", "dict": "{}",
            "tuple": "()", "set": "set()", "None": "None", "Any": "1", "object": "1", "complex": "1j",
            "Sequence": "[]", "Iterable": "[]", "Mapping": "{}", "Path": "pathlib.Path('.')"}


class SmokeOutcome(str, Enum):
    """A smoke test's outcome in the junit XML pytest writes; reports write the value."""

    PASSED = "passed"
    FAILED = "failed"  # a failure or an error
    SKIPPED = "skipped"


class Verdict(str, Enum):
    KEPT = "kept"
    DROPPED = "dropped"


@dataclass(frozen=True)
class Candidate:
    """One model-written test and what became of it, with why."""

    test: str
    status: Verdict
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """As reports/python_twin.json holds it."""
        return {"test": self.test, "status": self.status.value, "reason": self.reason}


@dataclass
class TwinResult:
    out_dir: Path
    smoke: dict[str, SmokeOutcome] = field(default_factory=dict)  # smoke test -> its outcome
    candidates: list[Candidate] = field(default_factory=list)
    coverage: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        passed = sum(1 for s in self.smoke.values() if s == SmokeOutcome.PASSED)
        kept = [c.test for c in self.candidates if c.status == Verdict.KEPT]
        lines = [f"verif-env python: {self.out_dir}: smoke {passed}/{len(self.smoke)} passed; "
                 f"model tests kept {len(kept)}/{len(self.candidates)}; line coverage "
                 f"{self.coverage.get('smoke', 0):.0%} -> {self.coverage.get('final', 0):.0%}"]
        lines += [f"  {c.test}: {c.status.value} ({c.reason})" for c in self.candidates]
        return "\n".join(lines)


def sample(annotation: str) -> str | None:
    """A Python expression of the annotated type, or None when none can be made up."""
    ann = annotation.strip().strip("'\"")
    if not ann:
        return None
    if "|" in ann:
        options = [a.strip() for a in ann.split("|")]
        picks = [sample(a) for a in options if a != "None"]
        return next((p for p in picks if p is not None), "None" if "None" in options else None)
    optional = re.fullmatch(r"(?:typing\.)?Optional\[(.*)\]", ann)
    if optional:
        return sample(optional.group(1)) or "None"
    base = re.split(r"[\[.]", ann.split(".")[-1] if "[" not in ann else ann.split("[")[0].split(".")[-1])[0]
    return _SAMPLES.get(base)


def _call_args(fn: pyapi.Callable_) -> tuple[str | None, str]:
    """Source for the call's arguments, or (None, why) when a required argument cannot be built."""
    args = []
    for p in fn.params:
        if p.kind in ("var_positional", "var_keyword") or p.default is not None:
            continue
        value = sample(p.annotation)
        if value is None:
            return None, f"no sample value for `{p.name}: {p.annotation or '(no hint)'}`"
        args.append(f"{p.name}={value}" if p.kind == "keyword_only" else value)
    return ", ".join(args), ""


def _smoke_test(owner: str, fn: pyapi.Callable_, target: str) -> str:
    args, why = _call_args(fn)
    name = f"test_{owner + '_' if owner else ''}{fn.name}_smoke"
    fixtures = "mod" if not owner else f"mod, {owner}_instance"
    head = f"def {name}({fixtures}):\n    \"\"\"{fn.signature} runs on sample arguments"
    head += f" (documented raises allowed: {', '.join(fn.raises)}).\"\"\"\n" if fn.raises else ".\"\"\"\n"
    if args is None:
        return head + f"    pytest.skip({why!r})\n"
    call = f"{target}({args})"
    if fn.is_async:
        call = f"asyncio.run({call})"
    if fn.raises:
        names = ", ".join(repr(r) for r in fn.raises)
        return head + f"    try:\n        {call}\n    except raised(mod, {names}):\n        pass\n"
    return head + f"    {call}\n"


def smoke_suite(api: pyapi.ModuleApi) -> str:
    """One smoke test per public callable, a fixture per class instance."""
    out = [f'"""Smoke tests for `{api.module}`, generated by `inhouse verif-env --lang python`: do not edit."""\n',
           "import asyncio  # noqa: F401  (async callables)\nimport pathlib  # noqa: F401  (Path arguments)\n\n"
           "import pytest\n\nfrom twin_fixtures import raised  # noqa: F401  (`mod`, the module, is in conftest.py)\n"]
    for fn in api.functions:
        out.append("\n\n" + _smoke_test("", fn, f"mod.{fn.name}"))
    for cls in api.classes:
        init = cls.init or pyapi.Callable_("__init__")
        args, why = _call_args(init)
        out.append(f"\n\n@pytest.fixture\ndef {cls.name}_instance(mod):\n")
        out.append(f"    pytest.skip({why!r})\n" if args is None else f"    return mod.{cls.name}({args})\n")
        out.append(f"\n\ndef test_{cls.name}_constructs({cls.name}_instance):\n"
                   f"    assert {cls.name}_instance is not None\n")
        for method in cls.methods:
            out.append("\n\n" + _smoke_test(cls.name, method, f"{cls.name}_instance.{method.name}"))
    return "".join(out)


def _fixtures(api: pyapi.ModuleApi) -> dict[str, str]:
    """twin_fixtures.py (load, raised) and conftest.py (the `mod` fixture) for the generated tests."""
    helpers = (f'"""Loads `{api.module}` from {api.path} for the generated tests."""\n\n'
               "import builtins\nimport importlib.util\nimport sys\n\n"
               f"PATH = {api.path!r}\nNAME = {api.module!r}\n\n\n"
               "def load():\n    if NAME in sys.modules:\n        return sys.modules[NAME]\n"
               "    spec = importlib.util.spec_from_file_location(NAME, PATH)\n"
               "    module = importlib.util.module_from_spec(spec)\n    sys.modules[NAME] = module\n"
               "    spec.loader.exec_module(module)\n    return module\n\n\n"
               "def raised(module, *names):\n"
               "    \"\"\"The exception classes a callable documents raising (builtins, or the module's own).\"\"\"\n"
               "    return tuple(getattr(builtins, n, None) or getattr(module, n, Exception) for n in names)\n")
    conftest = ('"""The module under test as the `mod` fixture."""\n\nimport pytest\n\n'
                "from twin_fixtures import load\n\n\n@pytest.fixture\ndef mod():\n    return load()\n")
    return {"twin_fixtures.py": helpers, "conftest.py": conftest}


class Harness:
    """pytest and coverage.py runs over the generated folder, each in its own process group."""

    def __init__(self, out_dir: Path, module_path: str, timeout_s: float) -> None:
        self.out_dir = out_dir
        self.module_path = module_path
        self.timeout_s = timeout_s
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "COV_", "COVERAGE_"))}
        self.env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"

    def pytest(self, *args: str) -> tuple[int | None, str]:
        res = run_process([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args], self.out_dir,
                          self.env, self.timeout_s)
        return res.returncode, res.output

    def covered(self, files: list[str]) -> set[int]:
        data = self.out_dir / ".coverage.twin"
        report = self.out_dir / ".coverage.json"
        env = dict(self.env, COVERAGE_FILE=str(data))
        run_process([sys.executable, "-m", "coverage", "run", f"--include={self.module_path}", "-m", "pytest", "-q",
                     "-p", "no:cacheprovider", *files], self.out_dir, env, self.timeout_s)
        run_process([sys.executable, "-m", "coverage", "json", "-q", "-o", str(report)], self.out_dir, env, 120)
        try:
            entries = json.loads(report.read_text(encoding="utf-8"))["files"]
        except (OSError, ValueError, KeyError):
            return set()
        finally:
            data.unlink(missing_ok=True)
            report.unlink(missing_ok=True)
        return {line for entry in entries.values() for line in entry.get("executed_lines", [])}


def _statements(path: str) -> int:
    tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    return len({n.lineno for n in ast.walk(tree) if isinstance(n, ast.stmt)}) or 1


def _smoke_outcomes(harness: Harness, smoke_file: str) -> dict[str, SmokeOutcome]:
    xml = harness.out_dir / ".smoke.xml"
    harness.pytest(smoke_file, f"--junitxml={xml}")
    outcomes: dict[str, SmokeOutcome] = {}
    if xml.exists():
        import xml.etree.ElementTree as ET

        for case in ET.parse(xml).getroot().iter("testcase"):
            status = SmokeOutcome.PASSED
            if case.find("skipped") is not None:
                status = SmokeOutcome.SKIPPED
            elif case.find("failure") is not None or case.find("error") is not None:
                status = SmokeOutcome.FAILED
            outcomes[case.get("name", "")] = status
        xml.unlink()
    return outcomes


def run(paths: list[Path], out: Path, cfg: VerifEnvConfig, *, fill: bool = False, client: ClientConfig | None = None,
        force: bool = False, backend=None) -> TwinResult:
    """Generate (and with `fill`, grow on evidence) the pytest suite for one Python module.

    With `fill`, the model is reached through `backend`, else one made from `client` (defaults when None).
    """
    if len(paths) != 1 or paths[0].suffix != ".py" or not paths[0].is_file():
        raise ValidationError(f"--lang python takes one existing .py file, got {', '.join(map(str, paths))}")
    api = pyapi.read_api(paths[0])
    out.mkdir(parents=True, exist_ok=True)
    smoke_file = f"test_{api.module}_smoke.py"
    files = {smoke_file: smoke_suite(api), **_fixtures(api), "pytest.ini": "[pytest]\naddopts = -p no:cacheprovider\n"}
    for name, text in files.items():
        tmp = out / (name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(out / name)
    result = TwinResult(out)
    harness = Harness(out, api.path, cfg.run_timeout_s)
    result.smoke = _smoke_outcomes(harness, smoke_file)
    total = _statements(api.path)
    kept_file = out / f"test_{api.module}_model.py"
    baseline_files = [smoke_file] + ([kept_file.name] if kept_file.exists() and not fill else [])
    covered = harness.covered(baseline_files)
    result.coverage["smoke"] = round(len(covered) / total, 4)
    if fill:
        if kept_file.exists() and not force:
            result.candidates.append(Candidate(kept_file.name, Verdict.KEPT, "exists (use --force)"))
        else:
            texts = asyncio.run(_ask_model(api, cfg, client, backend))
            kept = _select(harness, api, texts, smoke_file, covered, cfg, result)
            header = (f'"""Model-written tests for `{api.module}`, each kept because it passed {cfg.python_runs} '
                      'runs in a row and added line coverage (see reports/python_twin.json)."""\n\n'
                      "import pytest  # noqa: F401\n")
            kept_file.write_text(header + "".join(f"\n\n{t}" for t in kept), encoding="utf-8")
            covered = harness.covered([smoke_file, kept_file.name])
    result.coverage["final"] = round(len(covered) / total, 4)
    write_json_atomic(out / "reports" / "python_twin.json", {
        "module": api.module, "api": api.to_json(), "smoke": result.smoke,
        "candidates": [c.to_dict() for c in result.candidates],
        "coverage": result.coverage, "statements": total})
    return result


def _select(harness: Harness, api: pyapi.ModuleApi, texts: list[tuple[str, str]], smoke_file: str,
            covered: set[int], cfg: VerifEnvConfig, result: TwinResult) -> list[str]:
    """Keep a candidate only if it parses, passes `python_runs` runs in a row and adds covered lines."""
    kept: list[str] = []
    record = harness.out_dir / "candidates"
    shutil.rmtree(record, ignore_errors=True)
    record.mkdir()
    for index, (name, text) in enumerate(texts):
        source = "import pytest  # noqa: F401\n\n\n" + text
        (record / f"{index:02d}_{name}.py.txt").write_text(source, encoding="utf-8")
        reason, gained = _judge(harness, index, name, source, smoke_file, covered, cfg)
        if gained:
            covered |= gained
            kept.append(text)
        result.candidates.append(Candidate(name, Verdict.KEPT if gained else Verdict.DROPPED, reason))
    return kept


def _judge(harness: Harness, index: int, name: str, source: str, smoke_file: str, covered: set[int],
           cfg: VerifEnvConfig) -> tuple[str, set[int]]:
    """(why, the lines it adds): a candidate that adds lines is kept; the reason says why or why not."""
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        return f"does not parse: line {exc.lineno}: {exc.msg}", set()
    if not any(isinstance(n, ast.FunctionDef) and n.name == name for n in tree.body):
        return f"does not define {name}", set()
    cand = harness.out_dir / f"cand_{index:02d}.py"
    cand.write_text(source, encoding="utf-8")
    try:
        for attempt in range(1, cfg.python_runs + 1):
            code, output = harness.pytest(cand.name)
            if code != 0:
                first = next((ln for ln in output.splitlines() if ln.startswith("E ")), output.strip()[-200:])
                return (f"failed on run {attempt}: {first.strip()[:200]}" if attempt == 1 else
                        f"flaky: passed {attempt - 1} run(s), then failed"), set()
        gained = harness.covered([smoke_file, cand.name]) - covered
        if not gained:
            return "passes but adds no line coverage", set()
        return f"passed {cfg.python_runs} runs, +{len(gained)} line(s)", gained
    finally:
        cand.unlink(missing_ok=True)


async def _ask_model(api: pyapi.ModuleApi, cfg: VerifEnvConfig, client: ClientConfig | None,
                     backend) -> list[tuple[str, str]]:
    """One behaviour test per public callable, written by the model after the module's source."""
    from core.client import ClientConfig, create_backend
    from core.completion.pipeline import CompletionInput, CompletionPipeline
    from core.completion.should_complete import Decision
    from verifenv.fill import fill_overrides

    backend = backend or create_backend(client or ClientConfig())
    out: list[tuple[str, str]] = []
    try:
        info = await backend.info()
        max_new = max(16, min(cfg.fill_max_new_tokens, (info.max_total_tokens or 2048) // 3))
        pipeline = CompletionPipeline(backend, overrides=fill_overrides(info, max_new), info=info)
        source = Path(api.path).read_text(encoding="utf-8")
        targets = [(f.name, f.signature, f.raises) for f in api.functions]
        targets += [(f"{c.name}_{m.name}", f"{c.name}.{m.signature}", m.raises) for c in api.classes for m in c.methods]
        for name, signature, raises in targets:
            test = f"test_{name}_behaviour"
            head = (f"def {test}(mod):\n    \"\"\"`{signature}`: assert results of concrete calls and edge cases"
                    + (f"; it raises {', '.join(raises)}" if raises else "") + ".\"\"\"\n")
            prefix = (f'"""Tests for `{api.module}`, whose source is:\n\n{source}\n"""\n\nimport pytest\n\n'
                      f"\n{head}")
            inp = CompletionInput(path=f"test_{api.module}.py", prefix=prefix, suffix="\n", language_id="python")
            decision = Decision(complete=True, multiline=True, reason="verif-env python twin")
            try:
                body = (await pipeline.complete(inp, decision=decision, max_new_tokens=max_new)).text
            except InhouseError as exc:
                log.warning("model request for %s failed: %s", test, exc)
                body = ""
            out.append((test, head + (body if body.strip() else "    pass  # the model wrote nothing\n")))
    finally:
        await backend.aclose()
    return out
