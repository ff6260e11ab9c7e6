"""llama.cpp built for this CPU: what /info says of a build (server.loading.llamacpp_build) and the install tool
(server.native_build) up to the compiler, which `make install` runs for real (docs/serving.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from server import native_build
from server.loading import llamacpp_build

PORTABLE = ("CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | LLAMAFILE = 1 | "
            "OPENMP = 1 | REPACK = 1 | ")
NATIVE = ("CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX_VNNI = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | "
          "AVX512 = 1 | AVX512_VBMI = 1 | AVX512_VNNI = 1 | AVX512_BF16 = 1 | LLAMAFILE = 1 | REPACK = 1 | ")
CPU = ["avx", "avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "fma", "f16c"]


def test_build_description_names_what_this_cpu_has_and_the_build_lacks():
    text, missing = llamacpp_build(PORTABLE, CPU)
    assert missing == ["AVX512", "AVX512_VNNI", "AVX_VNNI", "AVX512_BF16"]
    assert text == "AVX2; OpenMP; lacks this CPU's AVX512, AVX512_VNNI, AVX_VNNI, AVX512_BF16"
    text, missing = llamacpp_build(NATIVE, CPU)
    assert missing == []
    assert text == "AVX2, AVX512, AVX512_VNNI, AVX_VNNI, AVX512_BF16; ggml threads; all of this CPU's"
    assert llamacpp_build(PORTABLE, ["avx", "avx2"]) == ("AVX2; OpenMP; all of this CPU's", [])


def test_cache_key_follows_version_and_cpu(monkeypatch):
    monkeypatch.setattr(native_build, "cpu_features", lambda: ["avx2"])
    key = native_build.cache_key("1.0")
    assert key.startswith("xllamacpp-1.0-native-") and key == native_build.cache_key("1.0")
    assert native_build.cache_key("1.1") != key
    monkeypatch.setattr(native_build, "cpu_features", lambda: ["avx2", "avx512f"])
    assert native_build.cache_key("1.0") != key


@pytest.fixture
def tool(monkeypatch):
    """native_build with pip and the compiler replaced: `calls` records pip's arguments and builds."""
    calls: list[tuple[str, ...]] = []
    monkeypatch.setattr(native_build, "installed_version", lambda: "1.0")
    monkeypatch.setattr(native_build, "installed_from", lambda: "")
    monkeypatch.setattr(native_build, "_pip", lambda *args: calls.append(args))
    monkeypatch.setattr(native_build, "_compiler", lambda: "g++ (test) 12")
    return calls


def test_a_cached_wheel_is_installed_without_building(tool, tmp_path, monkeypatch):
    slot = tmp_path / native_build.cache_key("1.0")
    slot.mkdir()
    (slot / "xllamacpp-1.0-cp310-abi3-linux_x86_64.whl").write_bytes(b"wheel")
    monkeypatch.setattr(native_build, "_build", lambda *a: pytest.fail("built although cached"))
    message = native_build.ensure_native(tmp_path)
    assert "installed xllamacpp-1.0-cp310-abi3-linux_x86_64.whl" in message
    assert tool == [("install", "-q", "--no-deps", "--force-reinstall", str(next(slot.glob("*.whl"))))]
    monkeypatch.setattr(native_build, "installed_from", lambda: f'{{"url": "file://{slot}/x.whl"}}')
    assert "already the build for this CPU" in native_build.ensure_native(tmp_path)


def test_a_cached_wheel_pip_refuses_leaves_the_portable_one(tool, tmp_path, monkeypatch):
    slot = tmp_path / native_build.cache_key("1.0")
    slot.mkdir()
    (slot / "xllamacpp-1.0-cp310-abi3-linux_x86_64.whl").write_bytes(b"not a zip")

    def refuse(*args: str) -> None:
        raise native_build.subprocess.CalledProcessError(1, ["pip", *args])

    monkeypatch.setattr(native_build, "_pip", refuse)
    message = native_build.ensure_native(tmp_path)
    assert "pip could not install" in message and f"remove {slot}" in message


def test_a_build_lands_in_the_cache_whole(tool, tmp_path, monkeypatch):
    def build(version: str, dest: Path, log: Path) -> Path:
        dest.mkdir(parents=True)
        assert not list(tmp_path.glob("xllamacpp-*"))  # nothing under the final name while it builds
        wheel = dest / f"xllamacpp-{version}-cp310-abi3-linux_x86_64.whl"
        wheel.write_bytes(b"built")
        return wheel

    monkeypatch.setattr(native_build.shutil, "which", lambda tool: f"/usr/bin/{tool}")
    monkeypatch.setattr(native_build, "_build", build)
    assert "installed" in native_build.ensure_native(tmp_path)
    slot = tmp_path / native_build.cache_key("1.0")
    assert [p.name for p in slot.iterdir()] == ["xllamacpp-1.0-cp310-abi3-linux_x86_64.whl"]
    assert not list(tmp_path.glob(".building-*"))


def test_a_failed_build_or_missing_tools_keep_the_portable_wheel(tool, tmp_path, monkeypatch):
    def fail(version: str, dest: Path, log: Path) -> Path:
        raise RuntimeError(f"the build failed (exit 1); its output: {log}")

    monkeypatch.setattr(native_build.shutil, "which", lambda tool: f"/usr/bin/{tool}")
    monkeypatch.setattr(native_build, "_build", fail)
    message = native_build.ensure_native(tmp_path)
    assert "the build failed" in message and "the PyPI wheel (AVX2) stays" in message
    assert tool == [] and not list(tmp_path.glob("xllamacpp-*/*.whl"))
    monkeypatch.setattr(native_build.shutil, "which", lambda tool: None)
    assert "skipped, no cmake" in native_build.ensure_native(tmp_path)
    monkeypatch.setattr(native_build, "_compiler", lambda: "")
    assert "no cmake, a C++ compiler" in native_build.ensure_native(tmp_path)
