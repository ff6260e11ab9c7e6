from __future__ import annotations

import pytest

from core import fim
from core.errors import ConfigError, ModelError

TEXTS = [
    ("def add(a, b):\n    ", "return a + b", "\n\nprint(add(1, 2))\n"),
    ("x = 'ä a\u0308 錯誤 😋'\r\n", "y = x", "\r\nz = 1\r\n"),
    ("", "", ""),
]


@pytest.mark.parametrize("name", fim.format_names())
@pytest.mark.parametrize("mode", list(fim.FimMode))
@pytest.mark.parametrize("prefix,middle,suffix", TEXTS)
def test_prompt_is_exact_prefix_of_example(name, mode, prefix, middle, suffix):
    fmt = fim.get_format(name)
    prompt = fmt.render_prompt(prefix, suffix, mode)
    example = fmt.render_example(prefix, middle, suffix, mode)
    assert example.startswith(prompt)
    assert example[len(prompt):] == middle + fmt.eot


@pytest.mark.parametrize("name", fim.format_names())
@pytest.mark.parametrize("mode", list(fim.FimMode))
def test_parity_with_repo_context(name, mode):
    fmt = fim.get_format(name)
    ctx = fim.RepoContext(repo_name="acme/widgets", path="src/a.py",
                          files=(fim.RepoFile("src/b.py", "def b():\n    return 'ä'\n"),))
    prompt = fmt.render_prompt("import b\n", "\n", mode, ctx)
    example = fmt.render_example("import b\n", "b.b()", "\n", mode, ctx)
    assert example == prompt + "b.b()" + fmt.eot
    if fmt.has_repo_layout:
        assert "src/b.py" in prompt and "src/a.py" in prompt
        assert fmt.file_sep in prompt


def test_spm_middle_continues_prefix():
    fmt = fim.get_format("starcoder")
    prompt = fmt.render_prompt("def f():\n    ret", "\n", "spm")
    assert prompt == "<fim_prefix><fim_suffix>\n<fim_middle>def f():\n    ret"


def test_psm_layouts_of_known_families():
    assert fim.get_format("starcoder").render_prompt("a", "b") == "<fim_prefix>a<fim_suffix>b<fim_middle>"
    assert fim.get_format("qwen2.5-coder").render_prompt("a", "b") == "<|fim_prefix|>a<|fim_suffix|>b<|fim_middle|>"
    assert fim.get_format("codellama").render_prompt("a", "b") == "<PRE> a <SUF>b <MID>"
    assert fim.get_format("deepseek-coder").render_prompt("a", "b") == "<｜fim▁begin｜>a<｜fim▁hole｜>b<｜fim▁end｜>"


def test_registry_is_keyed_by_explicit_name():
    assert fim.get_format("starcoder2") is fim.get_format("starcoder")
    with pytest.raises(ConfigError, match="unknown FIM format 'bigcode/starcoder'"):
        fim.get_format("bigcode/starcoder")
    for required in ("starcoder", "qwen2.5-coder", "deepseek-coder", "codellama", "codegemma", "smollm2"):
        assert required in fim.format_names()


def test_stop_sequences_include_eot_and_sentinels():
    fmt = fim.get_format("smollm2")
    assert fmt.eot in fmt.stop and fmt.file_sep in fmt.stop
    assert fim.cut_at_stop("x = 1<|endoftext|>junk", fmt.stop) == "x = 1"


@pytest.mark.parametrize("name", ["starcoder", "smollm2"])
def test_sentinels_single_token_in_tiny_tokenizer(tiny_tokenizer, name):
    fim.check_sentinels(fim.get_format(name), tiny_tokenizer)


def test_sentinel_check_reports_multi_token(tiny_tokenizer):
    with pytest.raises(ModelError, match="is .* tokens, must be exactly 1"):
        fim.check_sentinels(fim.get_format("qwen2.5-coder"), tiny_tokenizer)


def test_smollm2_sentinels_single_token_in_real_tokenizer(smollm2_dir):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(smollm2_dir / "tokenizer.json"))
    fim.check_sentinels(fim.get_format("smollm2"), tok)
    # and the format the embedded model declares is that one
    from core.artifacts import fim_format_of

    assert fim_format_of(smollm2_dir) == "smollm2"
