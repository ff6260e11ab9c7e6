"""llama.cpp built for this CPU: `python -m server.native_build` (run by `make install`).

The `xllamacpp` wheel on PyPI is built for any x86-64 with AVX2 (and OpenMP). Built from its source for the
CPU at hand (llama.cpp's GGML_NATIVE: AVX-512, VNNI where the CPU has them) and without OpenMP, the llama.cpp
engine prefills a prompt about twice as fast on this project's 4-bit types (docs/serving.md). The build takes
minutes, so its wheel is kept in a cache (`~/.cache/inhouse/wheels`, or $INHOUSE_WHEEL_CACHE) keyed by the
xllamacpp version, the CPU's instruction sets and the compiler: a second install on the same machine takes
seconds. Without cmake or a C++ compiler, or if the build fails, the PyPI wheel stays (exit 0: a slower
engine, not a broken install), and the reason is printed. `INHOUSE_NATIVE=0 make install` skips it.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

CMAKE_ARGS = ("-DGGML_NATIVE=ON -DGGML_OPENMP=OFF "  # this CPU's instruction sets; ggml's own thread pool
              "-DLLAMA_LLGUIDANCE=OFF -DLLAMA_BUILD_BORINGSSL=OFF")  # both download at build time; neither is used
# the CPU flags that change what ggml compiles (ggml/src/ggml-cpu/CMakeLists.txt, GGML_NATIVE)
_FEATURES = re.compile(r"^(avx\w*|amx\w*|fma|f16c|bmi2|sse4_2|ssse3)$")
_OBJECT = re.compile(rb"\] Building CX?X? object ")  # cmake's line for each file it compiles
OBJECTS = 200  # files compiled for xllamacpp 2026.10 (197 in cmake, then its extension): the bar's length


def cpu_features() -> list[str]:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    for line in text.splitlines():
        if line.startswith("flags"):
            return sorted(f for f in line.split(":", 1)[1].split() if _FEATURES.match(f))
    return []


def _compiler() -> str:
    cxx = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++") or ""
    if not cxx:
        return ""
    out = subprocess.run([cxx, "--version"], capture_output=True, text=True, check=False).stdout
    return out.splitlines()[0] if out else cxx


def cache_key(version: str) -> str:
    digest = hashlib.sha256("\n".join([version, CMAKE_ARGS, _compiler(), *cpu_features()]).encode()).hexdigest()
    return f"xllamacpp-{version}-native-{digest[:12]}"


def installed_version() -> str | None:
    try:
        return metadata.version("xllamacpp")
    except metadata.PackageNotFoundError:
        return None


def installed_from() -> str:
    """Where pip installed xllamacpp from: a local wheel's URL (pip's direct_url.json), "" for the index."""
    try:
        return metadata.distribution("xllamacpp").read_text("direct_url.json") or ""
    except metadata.PackageNotFoundError:
        return ""


def _pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", *args], check=True)


def _build(version: str, dest: Path, log: Path) -> Path:
    """`pip wheel` of the xllamacpp source for this CPU into `dest`, its output in `log`, a bar of files compiled."""
    from tqdm import tqdm

    env = {**os.environ, "CMAKE_ARGS": CMAKE_ARGS, "NPROC": str(os.cpu_count() or 2)}
    # --no-cache-dir: pip's own wheel cache is keyed by the source, not by CMAKE_ARGS or the CPU, and would hand
    # back whatever wheel an earlier build of that source left there
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-cache-dir", "--no-binary", "xllamacpp", "-v",
           "-w", str(dest),
           f"xllamacpp=={version}"]
    with open(log, "wb") as out, tqdm(total=OBJECTS, unit="file", desc="llama.cpp for this CPU",
                                      file=sys.stderr) as bar:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                out.write(line)
                if _OBJECT.search(line) and bar.n < OBJECTS - 1:
                    bar.update(1)
        finally:  # interrupted: the compiler does not outlive the build
            if proc.poll() is None and sys.exc_info()[0] is not None:
                proc.kill()
        if proc.wait():
            raise RuntimeError(f"the build failed (exit {proc.returncode}); its output: {log}")
        bar.update(OBJECTS - bar.n)
    wheels = sorted(dest.glob("xllamacpp-*.whl"))
    if not wheels:
        raise RuntimeError(f"the build wrote no wheel; its output: {log}")
    return wheels[0]


def ensure_native(cache: Path, force: bool = False) -> str:
    """Install a native build of the installed xllamacpp version (from the cache, else built); one line says
    what happened. Never raises for a missing toolchain or a failed build: the PyPI wheel then stays."""
    version = installed_version()
    if version is None:
        return "native llama.cpp: xllamacpp is not installed (pip install -e '.[serve]' first); nothing done"
    slot = cache / cache_key(version)
    if slot.name in installed_from() and not force:
        return f"native llama.cpp: xllamacpp {version} here is already the build for this CPU ({slot})"
    cached = sorted(slot.glob("xllamacpp-*.whl")) if slot.is_dir() else []
    if not cached:
        missing = [tool for tool in ("cmake",) if shutil.which(tool) is None]
        if not _compiler():
            missing.append("a C++ compiler")
        if missing:
            return (f"native llama.cpp: skipped, no {', '.join(missing)} on this machine; the PyPI wheel (AVX2) "
                    "stays (about half the prompt speed)")
        slot.parent.mkdir(parents=True, exist_ok=True)
        print(f"native llama.cpp: building xllamacpp {version} for this CPU, once (minutes; cached in {slot})",
              file=sys.stderr, flush=True)
        with tempfile.TemporaryDirectory(dir=slot.parent, prefix=".building-") as tmp:
            try:
                wheel = _build(version, Path(tmp) / "dist", Path(tmp).parent / f"{slot.name}.log")
            except (RuntimeError, OSError) as exc:
                return f"native llama.cpp: {exc}; the PyPI wheel (AVX2) stays"
            staged = Path(tmp) / slot.name
            staged.mkdir()
            shutil.move(str(wheel), staged / wheel.name)
            shutil.rmtree(slot, ignore_errors=True)
            os.replace(staged, slot)  # the cache entry appears whole or not at all
        cached = sorted(slot.glob("xllamacpp-*.whl"))
    try:
        _pip("install", "-q", "--no-deps", "--force-reinstall", str(cached[0]))
    except subprocess.CalledProcessError as exc:
        return (f"native llama.cpp: pip could not install {cached[0]} (exit {exc.returncode}); the PyPI wheel "
                f"stays (remove {slot} to build it again)")
    return f"native llama.cpp: installed {cached[0].name} built for this CPU ({slot})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_cache = os.environ.get("INHOUSE_WHEEL_CACHE") or str(Path.home() / ".cache" / "inhouse" / "wheels")
    parser.add_argument("--cache", type=Path, default=Path(default_cache), help="where built wheels are kept")
    parser.add_argument("--force", action="store_true", help="install from the cache or build even when native")
    parser.add_argument("--key", action="store_true", help="print this machine's cache key and exit")
    args = parser.parse_args(argv)
    if args.key:
        print(cache_key(installed_version() or "?"))
        return 0
    try:
        print(ensure_native(args.cache, args.force), flush=True)
    except KeyboardInterrupt:
        print("native llama.cpp: interrupted; nothing cached, the installed xllamacpp unchanged", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
