"""`PostprocessContext`: what every post-processing filter knows about the cursor."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PostprocessContext:
    prefix: str
    suffix: str
    language_id: str
    multiline: bool
    stop: tuple[str, ...] = ()

    @property
    def current_line(self) -> str:
        """The text of the cursor's line before the cursor."""
        return self.prefix[self.prefix.rfind("\n") + 1:]

    @property
    def rest_of_line(self) -> str:
        """The text of the cursor's line after the cursor."""
        end = self.suffix.find("\n")
        return (self.suffix if end == -1 else self.suffix[:end]).rstrip("\r")
