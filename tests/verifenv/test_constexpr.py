from __future__ import annotations

import pytest

from verifenv.constexpr import evaluate, range_width


@pytest.mark.parametrize(
    ("text", "env", "value"),
    [
        ("8", {}, 8),
        ("WIDTH-1", {"WIDTH": 8}, 7),
        ("$clog2(DEPTH)", {"DEPTH": 16}, 4),
        ("$clog2(DEPTH)", {"DEPTH": 17}, 5),
        ("$clog2(1)", {}, 0),
        ("8'hFF", {}, 255),
        ("4'b1010", {}, 10),
        ("'1", {}, 1),
        ("1 + 2 * 3", {}, 7),
        ("2 ** 3 ** 2", {}, 512),
        ("10 - 2 - 3", {}, 5),
        ("(1 << 4) - 1", {}, 15),
        ("A > 2 ? 4 : 5", {"A": 3}, 4),
        ("DATA_W / 8", {"DATA_W": 32}, 4),
    ],
)
def test_folds_constant_expressions(text, env, value):
    assert evaluate(text, env) == value


@pytest.mark.parametrize("text", ["`WIDTH", "FOO", "4'b1x0", "$bits(data_t)", "1 / 0", "f(3)", ""])
def test_unknown_is_none_never_a_guess(text):
    assert evaluate(text, {}) is None


def test_range_width():
    assert range_width(("[WIDTH-1:0]",), {"WIDTH": 8}) == 8
    assert range_width(("[3:0]", "[1:0]"), {}) == 8
    assert range_width(("[0:7]",), {}) == 8
    assert range_width(("[4]",), {}) == 4
    assert range_width(("[W-1:0]",), {}) is None
