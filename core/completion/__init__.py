"""The completion pipeline shared by the language server, the exam and the verification generator.

`should_complete → build_prompt → request_completion → postprocess` (pipeline.py ties them together);
every stage is torch-free and usable on its own.
"""

from __future__ import annotations
