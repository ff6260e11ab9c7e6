"""A start-up check that llama.cpp can load and run a GGUF here, in a child process, before the server does.

llama.cpp's CPU backend repacks 4-bit weights for the instruction sets it was compiled for (`ggml-cpu/repack.cpp`;
a native build uses AVX-512, VNNI or AMX when the CPU reports them), and such a kernel crashed this project's VM
once. A crash inside the server's process would take every request with it, so `repack_ok` first loads the
GGUF and decodes two tokens in a child (`python -m server.llamacpp_probe GGUF`): when the child dies, it tries
again without repacking (llama.cpp's `--no-repack`), and the server runs that way, slower, with a warning; when
both die, a ModelError names the signal and what to reinstall. The outcome is remembered per build and file
(a small JSON file in the GGUF cache directory), so only the first start of a GGUF on a build pays the ~1 s.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from core.errors import ModelError

log = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 300


def _build_id() -> str:
    import xllamacpp

    from server.native_build import installed_from, installed_version

    return f"{installed_version()}|{installed_from()}|{xllamacpp.get_system_info()}"


def _file_id(gguf: Path) -> str:
    stat = gguf.stat()
    return f"{gguf.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"


def _describe(proc: subprocess.CompletedProcess[str]) -> str:
    if proc.returncode < 0:
        try:
            return f"killed by {signal.Signals(-proc.returncode).name}"
        except ValueError:
            return f"killed by signal {-proc.returncode}"
    tail = (proc.stderr or "").strip().splitlines()[-1:] or ["no output"]
    return f"exit {proc.returncode}: {tail[0][:300]}"


Command = Callable[[Path, int, bool], list[str]]


def probe_command(gguf: Path, threads: int, repack: bool) -> list[str]:
    return [sys.executable, "-m", "server.llamacpp_probe", str(gguf), "--threads", str(threads),
            *([] if repack else ["--no-repack"])]


def run_probe(gguf: Path, threads: int, repack: bool, command: Command = probe_command) -> str | None:
    """None when a child process loaded `gguf` and decoded with it, else how the child ended."""
    cmd = command(gguf, threads, repack)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PROBE_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        return f"no answer in {PROBE_TIMEOUT_S} s"
    return None if proc.returncode == 0 else _describe(proc)


def repack_ok(gguf: Path, threads: int, cache_dir: Path, command: Command = probe_command) -> bool:
    """Whether the server may let llama.cpp repack `gguf`'s weights (checked in a child once per build and
    file); raises ModelError when llama.cpp cannot run the file here either way."""
    key = hashlib.sha256(f"{_build_id()}\n{_file_id(gguf)}".encode()).hexdigest()[:24]
    record = cache_dir / f"probe-{key}.json"
    try:
        return bool(json.loads(record.read_text(encoding="utf-8"))["repack"])
    except (OSError, ValueError, KeyError):
        pass
    failure = run_probe(gguf, threads, repack=True, command=command)
    repack = failure is None
    if not repack:
        second = run_probe(gguf, threads, repack=False, command=command)
        if second is not None:
            raise ModelError(f"llama.cpp cannot run {str(gguf)!r} on this machine: a test process was {failure} "
                             f"(and {second} without weight repacking). If llama.cpp was built for this CPU "
                             "(`make install`), reinstall the portable wheel: INHOUSE_NATIVE=0 and "
                             "`pip install --force-reinstall --no-deps xllamacpp`")
        log.warning("llama.cpp's repacked kernels crashed a test process here (%s): serving %s without repacking "
                    "(slower prompts)", failure, gguf.name)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = record.with_name(f".{record.name}.{os.getpid()}")
        tmp.write_text(json.dumps({"repack": repack, "gguf": str(gguf), "failure": failure}), encoding="utf-8")
        os.replace(tmp, record)
    except OSError as exc:  # an unwritable cache: probe again next start
        log.info("could not record the llama.cpp probe in %s: %s", cache_dir, exc)
    return repack


def main(argv: list[str] | None = None) -> int:
    import argparse

    import xllamacpp

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("gguf")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-repack", action="store_true")
    args = parser.parse_args(argv)
    params = xllamacpp.CommonParams()
    params.model.path = args.gguf
    params.n_ctx = 256
    params.n_parallel = 1
    params.cpuparams.n_threads = params.cpuparams_batch.n_threads = args.threads
    params.load_mode = xllamacpp.llama_load_mode.LLAMA_LOAD_MODE_NONE
    params.no_extra_bufts = args.no_repack
    params.hostnames = ["127.0.0.1"]
    params.port = 0
    params.verbosity = -1
    params.warmup = False
    server = xllamacpp.Server(params)
    # 40 tokens: more than one row block of every repacked kernel (batches of 4+ rows take the GEMM path)
    out = server.handle_completions({"prompt": list(range(1, 41)), "n_predict": 2, "temperature": 0.0})
    if "timings" not in out:
        print(f"llama.cpp answered without a completion: {str(out)[:300]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
