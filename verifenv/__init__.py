"""verif-env: RTL (or a Python module) in, a running, checked verification environment out.

Stages: filelist (file closure) -> interface (tree-sitter + pyslang) -> generate (cocotb env from templates/)
-> fill (model-written holes, optional) -> ladder (L0..L5 acceptance, mutate.py for L5). cli.py wires them.
"""
