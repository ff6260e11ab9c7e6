"""`inhouse lsp`: the language server that turns a cursor position into an inline suggestion.

pygls 2 server (server.py) over the completion pipeline of core.completion; settings (config.py), UTF-16
positions (positions.py), status and rate-limited messages (status.py), local telemetry (telemetry.py),
background symbol index (indexer.py). Imports nothing heavy: it runs inside editors.
"""

from __future__ import annotations
