"""`--fill`: the model fills the holes of the owned files, and only what passes the ladder is kept.

Holes are `# <hole:NAME>` ... `# </hole:NAME>` blocks in tb/constraints.py, tb/ref_model.py and
tb/coverage_points.py. Each is filled through the completion engine (core.completion's prompt budget, healing
and post-processing) over a TGI-compatible backend (core.client), with the RTL, its comments, its assertions
(the constraints stimulus must respect) and the port table in the prompt. After each round the ladder runs;
failures (syntax errors, smoke failures, scoreboard mismatches) are fed back for up to `max_repair` rounds.
A hole that never passes is restored to its generated text and reported as rejected.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import InhouseError
from verifenv import generate, ladder
from verifenv.config import VerifEnvConfig
from verifenv.interface import ModuleInterface
from verifenv.report import FillItem, FillStatus, Report, Status, write_report

if TYPE_CHECKING:
    from core.client import ClientConfig

log = logging.getLogger(__name__)

HOLE = re.compile(r"^(?P<indent>[ \t]*)# <hole:(?P<name>\w+)>\n(?P<body>.*?)^[ \t]*# </hole:(?P=name)>",
                  re.MULTILINE | re.DOTALL)
# Order matters: legal stimulus first, then the reference model (judged with that stimulus), then coverage.
ORDER = ("tb/constraints.py", "tb/ref_model.py", "tb/coverage_points.py")


@dataclass
class FillOutcome:
    items: list[FillItem] = field(default_factory=list)
    report: Report | None = None

    def summary(self) -> str:
        if not self.items:
            return "verif-env fill: nothing to fill"
        return "\n".join(f"verif-env fill: {i.file}: {i.status.value} after {i.rounds} round(s)"
                         + (f" ({i.reasons[-1]})" if i.reasons else "") for i in self.items)


def holes(text: str) -> dict[str, tuple[int, int, str, str]]:
    """name -> (body start, body end, indent, body) for every hole in a file."""
    return {m.group("name"): (m.start("body"), m.end("body"), m.group("indent"), m.group("body"))
            for m in HOLE.finditer(text)}


def replace_hole(text: str, name: str, body: str) -> str:
    start, end, indent, _old = holes(text)[name]
    return text[:start] + body + text[end:]


def indent_body(raw: str, indent: str) -> str:
    """The model's text as a hole body: dedented to its own margin, re-indented to the hole's, ending in \\n."""
    lines = raw.replace("\r\n", "\n").split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    while lines and not lines[0].strip():
        lines.pop(0)
    margin = min((len(ln) - len(ln.lstrip()) for ln in lines if ln.strip()), default=0)
    return "".join(f"{indent}{ln[margin:]}\n" if ln.strip() else "\n" for ln in lines)


def context_header(iface: ModuleInterface, feedback: str) -> str:
    """The RTL, its comments and assertions and the port table, as a Python comment block for the prompt."""
    rtl = Path(iface.file).read_text(encoding="utf-8", errors="replace")
    lines = [f"# Verification of `{iface.name}` ({Path(iface.file).name}). The RTL:"]
    lines += [f"#   {ln}" for ln in rtl.splitlines()]
    if iface.assertions:
        lines.append("# The design's assertions: stimulus must never violate them:")
        lines += [f"#   {a}" for a in iface.assertions]
    lines.append("# Ports (name, direction, width):")
    lines += [f"#{row}" for row in generate.port_table(iface).splitlines()]
    if feedback:
        lines.append("# The previous attempt was rejected by simulation:")
        lines += [f"#   {ln}" for ln in feedback.splitlines()[:12]]
    return "\n".join(lines) + "\n\n"


def acceptance(rel: str, report: Report) -> tuple[bool, str]:
    """Whether a filled file is kept, and the reason in words."""
    for level in report.levels:
        if level.level in ("L0", "L1", "L2") and level.status != Status.PASS:
            return False, f"{level.level} {level.name}: {level.status.value}: {level.detail}"
    if rel == "tb/ref_model.py":
        l3 = next(lv for lv in report.levels if lv.level == "L3")
        if l3.status != Status.PASS:
            return False, f"L3 scoreboard: {l3.status.value}: {l3.detail}"
    if rel == "tb/coverage_points.py":
        l4 = next(lv for lv in report.levels if lv.level == "L4")
        points = l4.data.get("points", {})
        if not points:
            return False, "L4 coverage: no coverage point defined"
        if not all(points.values()):
            return False, f"L4 coverage: {l4.detail}"
    return True, "passed the ladder"


def fill_overrides(info, max_new: int) -> dict:
    """The server's profile for a whole-file hole: the prompt as long as the server takes, `max_new` new tokens.
    Behind a server that reports no profile, the FIM format it names (else the runner says none is known)."""
    out = {"max_prompt_tokens": max(64, (info.max_total_tokens or 2048) - max_new - 8),
           "max_new_tokens_multiline": max_new}
    if info.profile is None and info.fim_format:
        out["fim_format"] = info.fim_format
    return out


async def _complete(pipeline, path: Path, text: str, name: str, header: str, max_new: int) -> str:
    from core.completion.pipeline import CompletionInput
    from core.completion.should_complete import Decision

    start, end, indent, _body = holes(text)[name]
    inp = CompletionInput(path=str(path), prefix=header + text[:start], suffix=text[end:],
                          language_id="python")
    decision = Decision(complete=True, multiline=True, reason="verif-env hole")
    return (await pipeline.complete(inp, decision=decision, max_new_tokens=max_new)).text


async def _fill(out_dir: Path, iface: ModuleInterface, cfg: VerifEnvConfig, sim: str, client: ClientConfig | None,
                force: bool, backend=None) -> FillOutcome:
    from core.client import ClientConfig, create_backend
    from core.completion.pipeline import CompletionPipeline

    if backend is None:
        backend = create_backend(client or ClientConfig())
    outcome = FillOutcome()
    try:
        info = await backend.info()
        max_new = max(16, min(cfg.fill_max_new_tokens, (info.max_total_tokens or 2048) // 3))
        pipeline = CompletionPipeline(backend, overrides=fill_overrides(info, max_new), info=info)
        manifest = json.loads((out_dir / generate.MANIFEST).read_text(encoding="utf-8"))
        defaults = generate.owned_files(iface, generate.GenerateOptions(sim=sim, defines=tuple(manifest["defines"])))
        for rel in ORDER:
            path = out_dir / rel
            original = path.read_text(encoding="utf-8")
            default_holes = holes(defaults[rel])
            names = [n for n, h in holes(original).items()
                     if force or (n in default_holes and h[3] == default_holes[n][3])]
            if not names:
                outcome.items.append(FillItem(rel, FillStatus.KEPT, 0,
                                              ("its holes were edited by hand (use --force to refill)",)))
                continue
            outcome.items.append(await _fill_file(pipeline, out_dir, rel, original, names, iface, cfg, sim, max_new))
    finally:
        await backend.aclose()
    return outcome


async def _fill_file(pipeline, out_dir: Path, rel: str, original: str, names: list[str], iface: ModuleInterface,
                     cfg: VerifEnvConfig, sim: str, max_new: int) -> FillItem:
    path = out_dir / rel
    attempts = out_dir / "fills"
    attempts.mkdir(exist_ok=True)
    feedback = ""
    reasons: list[str] = []
    for round_no in range(1, cfg.max_repair + 2):
        text = original
        header = context_header(iface, feedback)
        for name in names:
            try:
                raw = await _complete(pipeline, path, text, name, header, max_new)
            except InhouseError as exc:
                reasons.append(f"round {round_no}: backend: {exc}")
                path.write_text(original, encoding="utf-8")
                return FillItem(rel, FillStatus.REJECTED, round_no, tuple(reasons))
            body = indent_body(raw, holes(text)[name][2])
            if body.strip():
                text = replace_hole(text, name, body)
        stem = Path(rel).stem
        if text == original:
            reasons.append(f"round {round_no}: the model returned nothing usable for {', '.join(names)}")
            feedback = "the completion was empty: write the code"
            continue
        (attempts / f"{stem}.round{round_no}.py").write_text(text, encoding="utf-8")
        _write(path, text)
        report = ladder.check(out_dir, cfg, sim, iface.name, mutants=0, write=False, reuse_build=True,
                              upto="L2" if rel == "tb/constraints.py" else "L4")
        ok, why = acceptance(rel, report)
        log.info("fill %s round %d: %s", rel, round_no, why)
        if ok:
            return FillItem(rel, FillStatus.ACCEPTED, round_no, (*reasons, why))
        reasons.append(f"round {round_no}: {why}")
        feedback = why
    _write(path, original)
    return FillItem(rel, FillStatus.REJECTED, cfg.max_repair + 1, tuple(reasons))


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def fill(out_dir: str | Path, iface: ModuleInterface, cfg: VerifEnvConfig, sim: str, *,
         client: ClientConfig | None = None, mutants: int = 0, force: bool = False, backend=None) -> FillOutcome:
    """Fill every unfilled hole, keep what the ladder accepts, then climb the ladder on the result.

    `backend` (a core.client.CompletionBackend) replaces the one made from `client` (the resolved [client] config,
    defaults when None).
    """
    out_dir = Path(out_dir)
    outcome = asyncio.run(_fill(out_dir, iface, cfg, sim, client, force, backend))
    report = ladder.check(out_dir, cfg, sim, iface.name, mutants=mutants, write=False, reuse_build=True)
    report.fill = list(outcome.items)
    rejected = [i.file for i in outcome.items if i.status == FillStatus.REJECTED]
    if rejected:
        report.notes.append(f"model fills rejected (restored to the generated text): {', '.join(rejected)}")
    outcome.report = write_report(report, out_dir, True)
    return outcome
