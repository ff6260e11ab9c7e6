"""Generate, deterministically, a cocotb 2.x environment from an interface and its file closure.

`generate(iface, fileset, out_dir, options)` renders templates/ into OUT: the cocotb tests, a pytest runner
(cocotb_tools.runner), a Makefile, and the files people or the model own (reference model, stimulus
constraints, coverage points), which are written only when absent unless `force`. Same inputs, same bytes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import pprint
import re
from dataclasses import dataclass, field
from pathlib import Path

from core.artifacts import write_json_atomic
from core.errors import ValidationError
from verifenv import assertions
from verifenv import sim as simulators
from verifenv.filelist import FileSet
from verifenv.interface import ModuleInterface

log = logging.getLogger(__name__)

OWNED = ("tb/ref_model.py", "tb/constraints.py", "tb/coverage_points.py")
MANIFEST = "verifenv.json"
TEMPLATES = Path(__file__).resolve().parent / "templates"


@dataclass(frozen=True)
class GenerateOptions:
    sim: str = "icarus"
    cycles: int = 200
    reset_cycles: int = 3
    seed: int = 1
    period_ns: int = 10
    force: bool = False
    pyuvm: bool = False
    defines: tuple[str, ...] = ()
    parameters: tuple[str, ...] = ()  # NAME=VALUE overrides of the top's parameters (-G), for every build


def parameter_overrides(parameters: tuple[str, ...]) -> dict[str, str]:
    """NAME=VALUE texts as a mapping; the rule is named when one has no `=`."""
    out = {}
    for text in parameters:
        name, eq, value = text.partition("=")
        if not eq or not name.strip() or not value.strip():
            raise ValidationError(f"`--param` must be NAME=VALUE, got {text!r}")
        out[name.strip()] = value.strip()
    return out


def _int_or_none(text: str) -> int | None:
    try:
        return int(text, 0)
    except ValueError:
        return None


@dataclass
class GenerateResult:
    out_dir: Path
    written: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # owned files left as they were


def template(name: str) -> str:
    return (TEMPLATES / name).read_text(encoding="utf-8")


def render(name: str, values: dict[str, str]) -> str:
    text = template(name)
    for key, value in values.items():
        text = text.replace(f"@@{key}@@", value)
    leftover = re.findall(r"@@[A-Z_]+@@", text)
    if leftover:
        raise AssertionError(f"template {name}: unfilled placeholders {leftover}")
    return text


def tb_spec(iface: ModuleInterface, options: GenerateOptions) -> dict:
    """What the cocotb tests need to know about the design (widths are read from the simulator at run time)."""
    special = {c.name for c in iface.clocks} | {r.name for r in iface.resets}
    # Unpacked arrays cannot be driven or read as one integer: left out, and listed.
    special |= {p.name for p in iface.ports if p.unpacked}
    clocks = [{"name": c.name, "edge": c.edge, "period_ns": options.period_ns + 4 * i}
              for i, c in enumerate(iface.clocks)]
    outputs = [p.name for p in iface.outputs(options.defines) if not p.unpacked]
    inputs = [p.name for p in iface.inputs(options.defines) if p.name not in special]
    present = set(inputs) | set(outputs)
    channels = [dataclasses.asdict(c) for c in iface.channels
                if c.valid in present and (not c.ready or c.ready in present)]
    for ch in channels:  # a payload port under an inactive `ifdef` is not there to drive
        kept = [(p, f) for p, f in zip(ch["payload"], ch["fields"], strict=False) if p in present]
        ch["payload"], ch["fields"] = [p for p, _f in kept], [f for _p, f in kept]
    return {
        "top": iface.name,
        "clocks": clocks,
        "resets": [{"name": r.name, "active_low": r.active_low, "asynchronous": r.asynchronous} for r in iface.resets],
        "inputs": inputs,
        "outputs": outputs,
        "channels": channels,
        "apb": {role: port for role, port in iface.apb.items() if port in present},
        # AXI4 / AXI4-Lite for cocotbext-axi (tb/buses.py); a bus with a port under an inactive `ifdef` is left out.
        "axi": [dict(bus) for bus in iface.axi if set(bus["ports"]) <= present],
        "wishbone": {role: port for role, port in iface.wishbone.items() if port in present}
        if {iface.wishbone.get(r) for r in ("cyc", "stb", "ack")} <= present else {},
        # One clock only: transfers are sampled at the first clock's edges (a CDC FIFO's sides tick apart).
        "stream": stream_spec(channels) if len(iface.clocks) <= 1 else None,
        "qualifiers": {k: v for k, v in iface.qualifiers.items() if k in outputs and v.lstrip("!") in outputs},
        "params": {**{p.name: p.value for p in iface.params if p.value is not None},
                   **{k: v for k, v in ((k, _int_or_none(v)) for k, v in
                                        parameter_overrides(options.parameters).items()) if v is not None}},
        "cycles": options.cycles,
        "not_driven": sorted(p.name for p in iface.ports if p.unpacked and p.active(options.defines)),
        "reset_cycles": options.reset_cycles,
    }


def stream_spec(channels: list[dict]) -> dict | None:
    """For a stream-like design (one output channel, input channels carrying its fields): what the transfer
    scoreboard compares. Channels are named `name/valid`."""
    from verifenv.channels import Channel, stream_pairs

    pairs = stream_pairs([Channel(**{**c, "payload": tuple(c["payload"]), "fields": tuple(c["fields"])})
                          for c in channels])
    if pairs is None:
        return None
    ins, out, fields = pairs
    return {"inputs": [f"{c.name}/{c.valid}" for c in ins], "output": f"{out.name}/{out.valid}",
            "fields": list(fields)}


def run_spec(iface: ModuleInterface, fileset: FileSet, options: GenerateOptions) -> dict:
    return {
        "top": iface.name,
        "module": f"cocotb_{iface.name}",
        "sim": options.sim,
        "rtl": [str(Path(f).resolve()) for f in fileset.files],
        "includes": [str(Path(i).resolve()) for i in fileset.includes],
        "defines": sorted(set(fileset.defines) | set(options.defines)),
        "parameters": parameter_overrides(options.parameters),
        "build_args": {sim: list(args) for sim, args in simulators.BUILD_ARGS.items()},
        "seed": options.seed,
        "uvm_module": f"uvm_{iface.name}" if options.pyuvm else None,
    }


def port_table(iface: ModuleInterface, defines: tuple[str, ...] = ()) -> str:
    rows = []
    for p in iface.ports:
        if not p.active(defines):
            continue
        role = ""
        if any(c.name == p.name for c in iface.clocks):
            role = " (clock)"
        reset = next((r for r in iface.resets if r.name == p.name), None)
        if reset is not None:
            role = (f" (reset by {reset.by}, active {'low' if reset.active_low else 'high'}, "
                    f"{'async' if reset.asynchronous else 'sync'})")
        channel = next((c for c in iface.channels if p.name in (c.valid, c.ready)), None)
        if channel is not None:
            which = "valid" if p.name == channel.valid else "ready"
            role = f" ({channel.protocol} {which} of {channel.name or channel.side})"
        if p.name in iface.qualifiers:
            role = f" (valid while {iface.qualifiers[p.name]})"
        rows.append(f"    {p.name:<16} {p.direction:<7} {p.width if p.width is not None else '?'}{role}")
    return "\n".join(rows)


def _contract(iface: ModuleInterface) -> tuple[str, str]:
    if iface.clocks:
        clock = iface.clocks[0].name
        edge = "falling" if iface.clocks[0].edge == "negedge" else "rising"
        contract = (f"`step(inputs)` is called once per {edge} edge of `{clock}` with the inputs the design sampled\n"
                    f"at that edge, and returns the outputs as they read right after it (inputs still held).\n"
                    "Return None, or leave a port out, to compare nothing for it.")
        if len(iface.clocks) > 1:
            others = ", ".join(c.name for c in iface.clocks[1:])
            contract += f"\nOnly the `{clock}` domain is compared; other clocks: {others}."
        method = (
            "    def step(self, inputs: dict[str, int]) -> dict[str, int] | None:\n"
            "        \"\"\"Inputs at an active clock edge -> the outputs right after it "
            "(None: compare nothing).\"\"\"\n"
            "        # <hole:step>\n"
            "        return None\n"
            "        # </hole:step>\n")
    else:
        contract = ("`eval(inputs)` is called with the inputs driven and returns the outputs the design must show\n"
                    "once they settle. Return None, or leave a port out, to compare nothing for it.")
        method = (
            "    def eval(self, inputs: dict[str, int]) -> dict[str, int] | None:\n"
            "        \"\"\"Inputs -> the settled outputs (None: compare nothing).\"\"\"\n"
            "        # <hole:eval>\n"
            "        return None\n"
            "        # </hole:eval>\n")
    return contract, method


def derived_constraints(iface: ModuleInterface, defines: tuple[str, ...] = ()) -> list[str]:
    """Constraint lines from the assertions that forbid an input while an output holds (`assertions.py`)."""
    inputs = {p.name for p in iface.inputs(defines) if p.width == 1}
    outputs = {p.name for p in iface.outputs(defines)}
    return assertions.constraints(iface.assertions, inputs, outputs)


def owned_files(iface: ModuleInterface, options: GenerateOptions) -> dict[str, str]:
    """The initial text of the files people and the model own (their holes as generated)."""
    contract, method = _contract(iface)
    assertions = "\n".join(f"    {a}" for a in iface.assertions) or "    (none found in the RTL)"
    return {
        "tb/ref_model.py": render("ref_model.py.tmpl", {
            "TOP": iface.name, "CONTRACT": contract, "PORT_TABLE": port_table(iface, options.defines),
            "METHOD": method, "PARAMS": ", ".join(f"{p.name}={p.value}" for p in iface.params
                                                  if p.value is not None) or "none"}),
        "tb/constraints.py": render("constraints.py.tmpl", {
            "TOP": iface.name, "ASSERTIONS": assertions,
            "DERIVED": "".join(derived_constraints(iface, options.defines))}),
        "tb/coverage_points.py": render("coverage_points.py.tmpl", {"TOP": iface.name,
                                                                     "POINTS": coverage_points(iface, options)}),
    }


def coverage_points(iface: ModuleInterface, options: GenerateOptions) -> str:
    """Handshake points for every channel (a transfer, a stall under back-pressure), FIFO full/empty, and a
    Wishbone slave's request, acknowledge, write and stall."""
    present = {p.name for p in iface.ports if p.active(options.defines)}
    lines = []
    for ch in iface.channels:
        if ch.valid not in present or (ch.ready and ch.ready not in present):
            continue
        label = ch.name or ch.side
        src_v = "outputs" if (ch.side == "out") else "inputs"
        src_r = "inputs" if (ch.side == "out") else "outputs"
        valid = f"{src_v}.get({ch.valid!r}) == {0 if ch.valid_low else 1}"
        if ch.ready:
            ready = f"{src_r}.get({ch.ready!r}) == {0 if ch.ready_low else 1}"
            lines.append(f"    {label + ': transfer'!r}: lambda inputs, outputs: {valid} and {ready},\n")
            lines.append(f"    {label + ': stall'!r}: lambda inputs, outputs: {valid} and not ({ready}),\n")
        else:
            lines.append(f"    {label + ': valid'!r}: lambda inputs, outputs: {valid},\n")
        if ch.protocol == "fifo":
            flag = ch.ready if ch.side == "in" else ch.valid
            lines.append(f"    {('full' if ch.side == 'in' else 'empty') + ' (' + flag + ')'!r}: "
                         f"lambda inputs, outputs: outputs.get({flag!r}) == 1,\n")
    wb = iface.wishbone
    if wb and {wb.get(r) for r in ("cyc", "stb", "ack")} <= present:
        request = f"inputs.get({wb['cyc']!r}) == 1 and inputs.get({wb['stb']!r}) == 1"
        lines.append(f"    'wishbone: request': lambda inputs, outputs: {request},\n")
        lines.append(f"    'wishbone: ack': lambda inputs, outputs: outputs.get({wb['ack']!r}) == 1,\n")
        if wb.get("we") in present:
            lines.append(f"    'wishbone: write': lambda inputs, outputs: {request} and "
                         f"inputs.get({wb['we']!r}) == 1,\n")
        if wb.get("stall") in present:
            lines.append(f"    'wishbone: stall': lambda inputs, outputs: {request} and "
                         f"outputs.get({wb['stall']!r}) == 1,\n")
    return "".join(lines)


def _write(out_dir: Path, rel: str, text: str, result: GenerateResult, owned: bool, force: bool) -> None:
    path = out_dir / rel
    if owned and path.exists() and not force:
        result.kept.append(rel)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    result.written.append(rel)


def generate(iface: ModuleInterface, fileset: FileSet, out_dir: Path, options: GenerateOptions,
             metadata: dict | None = None) -> GenerateResult:
    """Write the environment for `iface` into out_dir; returns what was written and which owned files were kept."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    result = GenerateResult(out_dir)
    spec = tb_spec(iface, options)
    run = run_spec(iface, fileset, options)
    rtl_names = ", ".join(Path(f).name for f in fileset.files)
    files = {
        f"tb/cocotb_{iface.name}.py": (render("cocotb_tb.py.tmpl", {
            "TOP": iface.name, "RTL": rtl_names, "SPEC": pprint.pformat(spec, sort_dicts=True, width=100)}), False),
        "tb/test_runner.py": (render("test_runner.py.tmpl", {
            "TOP": iface.name, "RUN": pprint.pformat(run, sort_dicts=True, width=100)}), False),
        "Makefile": (render("Makefile.tmpl", {"TOP": iface.name, "SIM": options.sim,
                                              "CYCLES": str(options.cycles)}), False),
        "pytest.ini": (template("pytest.ini.tmpl"), False),
        "tb/protocol.py": (render("protocol.py.tmpl", {"TOP": iface.name}), False),
        "tb/buses.py": (render("buses.py.tmpl", {"TOP": iface.name}), False),
    }
    files.update({rel: (text, True) for rel, text in owned_files(iface, options).items()})
    if options.pyuvm:
        files[f"tb/uvm_{iface.name}.py"] = (render("pyuvm_tb.py.tmpl", {"TOP": iface.name, "RTL": rtl_names}), False)
    for rel, (text, owned) in files.items():
        _write(out_dir, rel, text, result, owned, options.force)
    write_json_atomic(out_dir / "interface.json", iface.to_json())
    fileset.write_f(out_dir / "rtl.f")
    manifest = {
        "top": iface.name, "sim": options.sim, "rtl": run["rtl"], "defines": run["defines"],
        "options": {k: (list(v) if isinstance(v, tuple) else v) for k, v in options.__dict__.items()},
        "generated": sorted(rel for rel, (_t, owned) in files.items() if not owned),
        "owned": sorted(rel for rel, (_t, owned) in files.items() if owned),
        "hashes": {rel: hashlib.sha256((out_dir / rel).read_bytes()).hexdigest()[:16] for rel in sorted(files)},
        "kept": sorted(result.kept), "stream": spec["stream"], **(metadata or {}),
    }
    write_json_atomic(out_dir / MANIFEST, manifest)
    log.info("generated %s: wrote %d file(s), kept %d owned", out_dir, len(result.written), len(result.kept))
    return result
