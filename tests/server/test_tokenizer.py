"""The llama.cpp engine's tokenizer (tokenizers over tokenizer.json) gives transformers' ids, special ids and text."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from server.tokenizer import FastTokenizer

ROOT = Path(__file__).resolve().parents[2]
SMOLLM2 = ROOT / "models" / "smollm2"
TEXTS = ["x = 1", "def f(a, b):\n    return a + b\n", "  ä錯誤😋 \t\r\n", "<|endoftext|>tail", "", " leading"]


@pytest.mark.parametrize("which", ["tiny", "smollm2"])
def test_ids_specials_and_text_equal_transformers(which, tiny_model_dir):
    from transformers import AutoTokenizer

    model_dir = tiny_model_dir if which == "tiny" else SMOLLM2
    if not (model_dir / "tokenizer.json").is_file():
        pytest.skip(f"no model at {model_dir}")
    ours, theirs = FastTokenizer(model_dir), AutoTokenizer.from_pretrained(model_dir)
    for text in TEXTS:
        for special in (True, False):
            assert ours(text, add_special_tokens=special)["input_ids"] == theirs(
                text, add_special_tokens=special)["input_ids"], (text, special)
        ids = theirs(text)["input_ids"]
        assert ours.decode(ids) == theirs.decode(ids)
    assert sorted(ours.all_special_ids) == sorted(theirs.all_special_ids)
    assert (ours.bos_token_id, ours.eos_token_id, ours.pad_token_id) == (
        theirs.bos_token_id, theirs.eos_token_id, theirs.pad_token_id)
    assert len(ours) == len(theirs)
    assert {i for i, t in ours.added_tokens_decoder.items() if t.special} == {
        i for i, t in theirs.added_tokens_decoder.items() if t.special}


def test_serving_on_llamacpp_never_imports_torch(tiny_model_dir):
    code = ("import sys\nfrom server.app import create_app\napp = create_app(sys.argv[1], threads=1)\n"
            "assert app.state.server.engine.choice.name == 'llama.cpp'\n"
            "print('torch' in sys.modules, 'transformers' in sys.modules)\napp.state.server.engine.close()\n")
    out = subprocess.run([sys.executable, "-c", code, str(tiny_model_dir)], capture_output=True, text=True,
                         cwd=ROOT, timeout=120, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["False", "False"]


def test_a_model_without_tokenizer_json_is_a_clear_error(tmp_path):
    from core.errors import ModelError

    with pytest.raises(ModelError, match="no tokenizer.json"):
        FastTokenizer(tmp_path)
