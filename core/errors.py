"""The one exception tree of inhouse; every component raises these and entry points map them.

    InhouseError
    ├── ConfigError                 bad config file, key, value or flag
    ├── CorpusError                 corpus input or output unusable (missing repo, existing output...)
    ├── ValidationError             a request or argument out of bounds (HTTP 422)
    ├── GenerationError             the model failed while generating (HTTP 424)
    ├── OverloadedError             too many requests in flight (HTTP 429)
    ├── BackendUnavailableError     the completion backend cannot be reached (refused, DNS, 502/503)
    │   └── BackendTimeoutError     it was reached but did not answer in time (slow, not down)
    ├── ModelError                  a model directory or artifact is missing or malformed
    ├── StageError                  a flywheel stage's command failed (names the command and its log)
    └── GrammarError                a tree-sitter grammar failed to load (names the language)
"""

from __future__ import annotations


class InhouseError(Exception):
    """Base of every error inhouse raises on purpose; its message is meant for a user."""

    error_type: str = "inhouse_error"


class ConfigError(InhouseError):
    error_type = "config"


class CorpusError(InhouseError):
    error_type = "corpus"


class ValidationError(InhouseError):
    error_type = "validation"


class GenerationError(InhouseError):
    error_type = "generation"


class OverloadedError(InhouseError):
    error_type = "overloaded"


class BackendUnavailableError(InhouseError):
    error_type = "backend_unavailable"


class BackendTimeoutError(BackendUnavailableError):
    """The backend accepted the connection but answered too late: slow (a loaded machine), not down."""

    error_type = "backend_timeout"


class StageError(InhouseError):
    error_type = "stage"


class ModelError(InhouseError):
    error_type = "model"


class GrammarError(InhouseError):
    error_type = "grammar"
