"""`core` and `lsp` must import without torch (they run inside editors and on laptops)."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize("module", ["core", "core.config", "core.fim", "core.languages", "app.cli", "lsp"])
def test_light_modules_do_not_import_torch(module):
    code = (
        "import importlib, sys, pkgutil\n"
        f"m = importlib.import_module({module!r})\n"
        "if hasattr(m, '__path__'):\n"
        "    for info in pkgutil.walk_packages(m.__path__, m.__name__ + '.'):\n"
        "        importlib.import_module(info.name)\n"
        "heavy = [n for n in ('torch', 'transformers', 'peft') if n in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
