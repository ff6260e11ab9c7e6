"""Stage 1, discover: list the candidate files of a repository.

Inside a git work tree, `git ls-files` (tracked plus untracked files that .gitignore does not exclude;
submodules are skipped). Elsewhere a careful walk: it never follows directory symlinks (so symlink loops
cannot trap it) and skips VCS folders, dependency folders and build outputs.
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from finetune.corpus.repos import RepoSpec, git_toplevel

log = logging.getLogger(__name__)

# Folders a walk never enters: VCS metadata, dependencies, virtual environments, caches and build outputs.
SKIP_DIRS = frozenset({
    ".git", ".hg", ".svn", "node_modules", "vendor", "third_party", "third-party", "thirdparty", "external",
    "bower_components", "__pycache__", ".venv", "venv", ".tox", ".nox", ".mypy_cache", ".pytest_cache",
    ".ruff_cache", ".idea", ".vscode", "site-packages", "dist", "build", "target", "out", "bin", "obj",
    ".gradle", ".next", ".nuxt", "coverage", ".eggs", "_build", "cmake-build-debug", "cmake-build-release",
})


@dataclass(frozen=True)
class Candidate:
    """One file to consider: its repository, its path inside it (POSIX) and where it is on disk."""

    repo: str
    path: str
    abspath: str


def _git_files(root: Path) -> list[str] | None:
    """Files under `root` as git lists them (relative to root), or None when git cannot list them."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--deduplicate"],
            cwd=root, capture_output=True, timeout=600, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning("%s: git ls-files failed (%s); walking the directory instead", root, exc)
        return None
    if out.returncode != 0:
        log.warning("%s: git ls-files failed (%s); walking the directory instead", root,
                    out.stderr.decode(errors="replace").strip())
        return None
    return [n for n in out.stdout.decode("utf-8", "surrogateescape").split("\0") if n]


def _walk_files(root: Path, counts: Counter) -> list[str]:
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False, onerror=lambda e: log.warning("%s", e)):
        links = [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
        counts["symlink"] += len(links)
        counts["skipped_dirs"] += sum(1 for d in dirnames if d in SKIP_DIRS or d.endswith(".egg-info"))
        dirnames[:] = sorted(d for d in dirnames
                             if d not in SKIP_DIRS and not d.endswith(".egg-info") and d not in links)
        rel = os.path.relpath(dirpath, root)
        for name in filenames:
            found.append(name if rel == "." else f"{rel}/{name}".replace(os.sep, "/"))
    return found


def discover(repo: RepoSpec, counts: Counter) -> list[Candidate]:
    """Every regular file of the repository, sorted by path; `counts` gets how they were found and skipped."""
    root = Path(repo.path)
    names = _git_files(root) if git_toplevel(root) is not None else None
    method = "git" if names is not None else "walk"
    if names is None:
        names = _walk_files(root, counts)
    counts[f"listed_{method}"] += len(names)
    out: list[Candidate] = []
    for name in sorted(set(names)):
        full = root / name
        try:
            if full.is_symlink():
                counts["symlink"] += 1
                continue
            if not full.is_file():
                counts["not_a_file"] += 1  # a submodule, a deleted tracked file, a socket...
                continue
        except OSError:
            counts["unreadable"] += 1
            continue
        out.append(Candidate(repo=repo.name, path=name, abspath=str(full)))
    counts["candidates"] += len(out)
    return out


def discovery_method(repo: RepoSpec) -> str:
    return "git" if git_toplevel(Path(repo.path)) is not None else "walk"
