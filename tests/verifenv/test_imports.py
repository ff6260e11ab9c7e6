from __future__ import annotations

import subprocess
import sys


def test_verifenv_imports_nothing_heavy():
    """The generator runs without torch and without the simulator libraries (they load in the environment)."""
    code = ("import importlib, pkgutil, sys, verifenv\n"
            "for info in pkgutil.walk_packages(verifenv.__path__, 'verifenv.'):\n"
            "    importlib.import_module(info.name)\n"
            "heavy = [n for n in ('torch', 'transformers', 'cocotb', 'pyuvm', 'pyslang') if n in sys.modules]\n"
            "assert not heavy, heavy\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
