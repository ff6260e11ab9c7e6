"""Bad models and adapters: a clear error at load or a 422 naming what is wrong, and the server keeps serving."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest

from core.errors import ModelError
from tests.server.conftest import make_adapter


def _copy_model(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_a_corrupt_or_truncated_model_file_is_a_clear_error_at_load(make_app, tiny_model_dir, tmp_path, damage):
    model = _copy_model(tiny_model_dir, tmp_path / "model")
    weights = model / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[:len(data) // 2] if damage == "truncated" else b"\x00not safetensors" + data[64:])
    with pytest.raises(ModelError, match=r"cannot load the model in .*model.*corrupt or truncated"):
        make_app(model_dir=model)


@pytest.fixture(scope="module")
def other_base(tmp_path_factory) -> Path:
    """Another tiny model: the same architecture with a different width (an adapter of it cannot fit ours)."""
    from finetune.models import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("other") / "other-base", hidden_size=64)


def _unmappable(good: Path, out: Path) -> Path:
    """A copy of `good` whose tensors name a module the model does not have (a fused qkv projection)."""
    from safetensors.torch import load_file, save_file

    shutil.copytree(good, out)
    tensors = load_file(str(good / "adapter_model.safetensors"))
    save_file({k.replace("q_proj", "qkv_proj"): v for k, v in tensors.items()}, str(out / "adapter_model.safetensors"))
    return out


async def test_bad_adapters_are_422s_and_the_server_keeps_serving(make_app, tiny_model_dir, other_base, tmp_path):
    adapters = tmp_path / "adapters"
    good = make_adapter(tiny_model_dir, adapters / "good")
    make_adapter(other_base, adapters / "other-base")
    _unmappable(good, adapters / "fused")
    shutil.copytree(good, adapters / "truncated")
    broken = adapters / "truncated" / "adapter_model.safetensors"
    broken.write_bytes(broken.read_bytes()[:200])
    app = make_app(adapters_dir=adapters, model_id="served-tiny")

    async def generate(adapter: str | None) -> httpx.Response:
        params = {"max_new_tokens": 3, **({"adapter_id": adapter} if adapter else {})}
        return await http.post("/generate", json={"inputs": "def f(x):\n    ", "parameters": params})

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t", timeout=60) as http:
        other = await generate("other-base")
        fused = await generate("fused")
        truncated = await generate("truncated")
        plain, with_good = await generate(None), await generate("good")
        shutil.copy(good / "adapter_model.safetensors", broken)  # a fixed copy is served without a restart
        fixed = await generate("truncated")

    assert other.status_code == 422 and other.json()["error_type"] == "validation"
    message = other.json()["error"]
    assert "trained for another base model" in message
    assert str(other_base) in message and "'served-tiny'" in message  # both bases named
    assert fused.status_code == 422 and "cannot map" in fused.json()["error"] and "qkv_proj" in fused.json()["error"]
    assert truncated.status_code == 422 and "corrupt or truncated" in truncated.json()["error"]
    assert plain.status_code == with_good.status_code == fixed.status_code == 200
    assert fixed.json() == with_good.json()  # the same weights as `good`
