"""build_prompt: token budgets with the tiny model's real tokenizer, healing, repo layout, char fallback."""

from __future__ import annotations

import pytest

from core.completion.prompt import PromptBudget, TokenCounter, build_prompt, rewind_for_healing
from core.fim import RepoFile, get_format

PREFIX = "".join(f"def f{i}(x):\n    return x + {i}\n\n" for i in range(300)) + "def total(items):\n    resu"
SUFFIX = "\n\n" + "".join(f"print(f{i}(1))\n" for i in range(300))


@pytest.mark.parametrize("limit", [64, 256, 1024])
def test_prompt_never_exceeds_the_token_budget(tiny_tokenizer, limit):
    fmt = get_format("starcoder")
    ctx = [RepoFile("lib/a.py", "def helper(v):\n    return v * 2\n" * 20)]
    built = build_prompt(PREFIX, SUFFIX, fmt, budget=PromptBudget(max_prompt_tokens=limit), tokenizer=tiny_tokenizer,
                         context=ctx, path="src/main.py")
    assert built.exact
    assert len(tiny_tokenizer.encode(built.prompt, add_special_tokens=False).ids) <= limit
    assert built.tokens <= limit
    # The prefix kept is the end of the prefix (nearest the cursor), the suffix kept its start.
    assert PREFIX.startswith(built.prefix[:0]) and (PREFIX[:len(PREFIX) - len(built.heal)]).endswith(built.prefix)
    assert SUFFIX.startswith(built.suffix)
    assert built.prompt.endswith(fmt.middle)


def test_healing_rewinds_the_word_at_the_cursor(tiny_tokenizer):
    fmt = get_format("starcoder")
    built = build_prompt("x = resu", "", fmt, tokenizer=tiny_tokenizer)
    assert built.heal and "x = resu".endswith(built.heal) and built.prefix + built.heal == "x = resu"
    no_heal = build_prompt("x = resu", "", fmt, tokenizer=tiny_tokenizer, heal=False)
    assert no_heal.heal == "" and no_heal.prefix == "x = resu"
    after_space = build_prompt("x = ", "", fmt, tokenizer=tiny_tokenizer)
    assert after_space.heal == ""


def test_repo_layout_carries_context_files(tiny_tokenizer):
    fmt = get_format("starcoder")
    ctx = (RepoFile("lib/util.py", "def helper(v):\n    return v * 2\n"),)
    built = build_prompt("y = helper(", ")\n", fmt, tokenizer=tiny_tokenizer, context=ctx, path="app.py")
    assert built.context == ctx
    assert built.prompt.startswith("<file_sep>lib/util.py\ndef helper(v)")
    assert "<file_sep>" in built.prompt and "app.py\n" in built.prompt
    # Formats without a repo layout drop the context rather than inventing one.
    plain = build_prompt("y = helper(", ")\n", get_format("codellama"), context=ctx)
    assert plain.context == () and "lib/util.py" not in plain.prompt


def test_character_budget_without_tokenizer():
    fmt = get_format("smollm2")
    built = build_prompt(PREFIX, SUFFIX, fmt, budget=PromptBudget(max_prompt_tokens=200))
    assert not built.exact
    assert len(built.prompt) <= 200 * 3
    prefix, removed = rewind_for_healing("value = self.resu", TokenCounter(None))
    assert (prefix, removed) == ("value = self.", "resu")


def test_unicode_prefix_cut_is_clean(tiny_tokenizer):
    fmt = get_format("starcoder")
    prefix = "s = '錯誤😋 ä a\u0308'\n" * 200 + "t = "
    built = build_prompt(prefix, "", fmt, budget=PromptBudget(max_prompt_tokens=100), tokenizer=tiny_tokenizer)
    assert prefix.endswith(built.prefix) and built.tokens <= 100


@pytest.mark.parametrize("limit", [96, 400])
def test_budget_holds_at_many_cursors_of_real_files(tiny_tokenizer, limit):
    """The bound is computed from the pieces; the real count of the whole prompt must respect it."""
    import random
    from pathlib import Path

    import core

    fmt = get_format("starcoder")
    rng = random.Random(limit)
    sources = [p.read_text(encoding="utf-8") for p in sorted(Path(core.__file__).parent.glob("*.py"))]
    for _ in range(60):
        text = rng.choice(sources)
        cut = rng.randrange(len(text))
        ctx = [RepoFile("other.py", rng.choice(sources)[:400])]
        built = build_prompt(text[:cut], text[cut:], fmt, budget=PromptBudget(max_prompt_tokens=limit),
                             tokenizer=tiny_tokenizer, context=ctx, path="pkg/mod.py")
        real = len(tiny_tokenizer.encode(built.prompt, add_special_tokens=False).ids)
        assert real <= built.tokens <= limit
