"""The adapters directory: one peft LoRA adapter per sub-directory, its name the `adapter_id` of a request.

The directory is read on every lookup, so an adapter copied in (e.g. by `inhouse export`) is served without a
restart, and one removed is no longer accepted. An id is a plain name: it can never reach outside the
directory (no separators, no `..`, and the resolved path must sit directly inside it). Used by `server.app`;
the engine loads an adapter into the model on its first request.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from core.artifacts import read_info
from core.completion.profile import CompletionProfile, profile_of_info
from core.errors import ConfigError, ModelError, ValidationError

log = logging.getLogger(__name__)

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_CONFIG = "adapter_config.json"


def adapter_mtime(path: Path) -> float:
    """The newest modification time of an adapter's files (a changed adapter is reloaded)."""
    return max((p.stat().st_mtime for p in path.iterdir() if p.is_file()), default=0.0)


@dataclass(frozen=True)
class Adapter:
    id: str
    path: Path
    fim_format: str | None
    profile: CompletionProfile | None = None  # how the adapter is asked (inhouse.json; derived for older ones)


class AdapterDirectory:
    def __init__(self, directory: str | Path | None) -> None:
        self.directory = Path(directory).resolve() if directory else None
        if self.directory is not None and not self.directory.is_dir():
            raise ModelError(f"adapters directory {str(directory)!r} does not exist")
        self._profiles: dict[Path, tuple[float, CompletionProfile | None]] = {}

    def profile(self, adapter_id: str, path: Path) -> CompletionProfile | None:
        """The adapter's profile, read again only when its files change (a derived one is logged once)."""
        mtime = adapter_mtime(path)
        cached = self._profiles.get(path)
        if cached is None or cached[0] != mtime:
            cached = (mtime, profile_of_info(read_info(path), where=f"adapter {adapter_id!r}"))
            self._profiles[path] = cached
        return cached[1]

    def profiles(self) -> dict[str, dict]:
        """adapter id -> its profile as JSON, for /info; an adapter whose profile is unreadable is left out and
        logged (requests naming it get a 422 that says why)."""
        out = {}
        for adapter_id in self.ids():
            try:
                profile = self.profile(adapter_id, self.directory / adapter_id)
            except (ConfigError, ModelError) as exc:
                log.warning("adapter %s: %s", adapter_id, exc)
                continue
            if profile is not None:
                out[adapter_id] = profile.to_dict()
        return out

    def ids(self) -> list[str]:
        """The adapters present now, sorted."""
        if self.directory is None:
            return []
        return sorted(p.name for p in self.directory.iterdir()
                      if p.is_dir() and _ID.match(p.name) and (p / _CONFIG).is_file())

    def resolve(self, adapter_id: str, field: str = "adapter_id") -> Adapter:
        """The adapter a request names; a 422 (ValidationError) for anything not in the directory."""
        available = self.ids()
        listing = ", ".join(available) if available else "none"
        if self.directory is None:
            raise ValidationError(f"`{field}` must be one of the loaded adapters (none: the server runs without "
                                  f"--adapters), got {adapter_id!r}")
        if not _ID.match(adapter_id) or ".." in adapter_id:
            raise ValidationError(f"`{field}` must be a plain adapter name matching {_ID.pattern} "
                                  f"(available: {listing}), got {adapter_id!r}")
        path = (self.directory / adapter_id).resolve()
        if path.parent != self.directory or not (path / _CONFIG).is_file():
            raise ValidationError(f"`{field}` must name an adapter in the adapters directory "
                                  f"(available: {listing}), got {adapter_id!r}")
        try:
            profile = self.profile(adapter_id, path)
        except (ConfigError, ModelError) as exc:
            raise ValidationError(f"`{field}` names adapter {adapter_id!r}, whose inhouse.json is unusable: {exc}"
                                  ) from exc
        return Adapter(adapter_id, path, read_info(path).get("fim_format"), profile)
