"""The gateway imports `core` and nothing of the other components (it reaches the model servers over HTTP)."""

from __future__ import annotations

import subprocess
import sys


def test_gateway_imports_only_core():
    code = (
        "import importlib, sys, pkgutil, gateway\n"
        "for info in pkgutil.walk_packages(gateway.__path__, 'gateway.'):\n"
        "    importlib.import_module(info.name)\n"
        "bad = [n for n in ('server', 'lsp', 'finetune', 'verifenv', 'torch', 'transformers') if n in sys.modules]\n"
        "assert not bad, bad\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
