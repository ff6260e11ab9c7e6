"""The documents the editor has open, the most recently edited last: context for prompts, and their paths
relative to the workspace folder that holds them (the paths prompts and the symbol index use).

Owned by the language server (lsp/server.py); pure bookkeeping over pygls's workspace.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any

from pygls.uris import to_fs_path

from core.completion.context import open_documents

MAX_RECENT = 50  # documents remembered as recently edited


def relative_path(workspace: Any, uri: str) -> str:
    """The document's path relative to the workspace folder (else the root) holding it; its name otherwise."""
    try:
        path = Path(to_fs_path(uri) or uri)
    except Exception:
        return uri
    for folder in workspace.folders.values():
        root = Path(to_fs_path(folder.uri) or "")
        if root.parts and path.is_relative_to(root):
            return str(path.relative_to(root))
    root = workspace.root_path
    if root and path.is_relative_to(root):
        return str(path.relative_to(root))
    return path.name


def folder_name(workspace: Any, uri: str) -> str:
    """The name of the workspace folder holding the document: the repository's name in prompts with repository
    context, as the corpus builder and the exam name it (its folder's name); "" outside every folder."""
    try:
        path = Path(to_fs_path(uri) or uri)
    except Exception:
        return ""
    for folder in workspace.folders.values():
        root = Path(to_fs_path(folder.uri) or "")
        if root.parts and path.is_relative_to(root):
            return folder.name or root.name
    return ""


class RecentDocuments:
    """Document uris in the order they were last opened or edited."""

    def __init__(self) -> None:
        self._uris: OrderedDict[str, None] = OrderedDict()

    def touch(self, uri: str) -> None:
        self._uris.pop(uri, None)
        self._uris[uri] = None
        while len(self._uris) > MAX_RECENT:
            self._uris.popitem(last=False)

    def forget(self, uri: str) -> None:
        self._uris.pop(uri, None)

    def context(self, workspace: Any, uri: str) -> dict[str, str]:
        """The recently edited documents, most recent first, under the runner's one rule (`open_documents`)."""
        recent = ((relative_path(workspace, other), workspace.text_documents[other].source)
                  for other in reversed(self._uris) if other in workspace.text_documents)
        return open_documents(recent, relative_path(workspace, uri))
