"""Repositories given by git URL (`url` in repos.toml): cloned into a cache directory of the host that reads
them, fetched instead of cloned again on the next build, and checked out at one commit. Called by
`pipeline.build` (the driver, local executor), `raydata.survey` (a Ray worker) and `worker.prepare` (every
process that reads a file of such a repository).

Layout under the cache directory: `<name>-<hash of the URL>.git`, a full mirror (`git clone --mirror`: all the
history, which `--eval-since` reads with `git log`), and `<name>-<hash>.trees/<commit>`, a work tree of the mirror
at that commit (`git worktree add --detach`; `<commit>.done` once complete), which discovery and the per-file
work read like any checkout. A lock file per repository keeps the processes of one host from cloning it twice.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from core.errors import CorpusError
from finetune.corpus import discover
from finetune.corpus.repos import RepoSpec, git_changed_since, name_of

GIT_TIMEOUT_S = 3600  # a first clone of a large repository takes a while


def root_of(clone_dir: str | None) -> Path:
    """Where clones go: `clone_dir`, or when it is unset the user's cache directory on the host that clones
    (read there, not on the driver)."""
    return Path(clone_dir) if clone_dir else Path(os.path.expanduser("~/.cache/inhouse/repos"))


def _key(url: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]", "_", name_of(url))[:60] or "repo"
    return f"{slug}-{hashlib.sha256(url.encode()).hexdigest()[:16]}"


def _git(args: list[str], cwd: Path | None, name: str, url: str, what: str) -> str:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}  # a URL that asks for a password fails instead of waiting
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=GIT_TIMEOUT_S,
                              check=False, env=env)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CorpusError(f"repository {name!r}: cannot {what} {url}: {exc}") from exc
    if done.returncode != 0:
        lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
        # git's first `fatal:` line says what went wrong; the lines after it are advice
        reason = next((line for line in lines if line.startswith(("fatal:", "error:"))), lines[-1] if lines else "")
        raise CorpusError(f"repository {name!r}: cannot {what} {url}: {reason or f'git exited {done.returncode}'}")
    return done.stdout.strip()


@contextmanager
def _locked(root: Path, key: str) -> Iterator[None]:
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f"{key}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _has_commit(mirror: Path, sha: str) -> bool:
    return subprocess.run(["git", "cat-file", "-e", f"{sha}^{{commit}}"], cwd=mirror, capture_output=True,
                          timeout=60, check=False).returncode == 0


def _mirror(root: Path, name: str, url: str) -> Path:
    """The mirror of `url` under `root`, cloned when missing, else fetched (the caller holds the lock)."""
    mirror = root / f"{_key(url)}.git"
    if mirror.is_dir():
        _git(["fetch", "--quiet", "--prune", "origin"], mirror, name, url, "fetch")
        return mirror
    partial = root / f"{_key(url)}.partial"
    shutil.rmtree(partial, ignore_errors=True)  # left by a clone that was killed
    _git(["clone", "--quiet", "--mirror", url, str(partial)], None, name, url, "clone")
    partial.rename(mirror)  # only a complete clone gets the mirror's name
    return mirror


def resolve(root: Path, name: str, url: str, ref: str) -> str:
    """The commit `ref` (default: the remote's HEAD) names now, the mirror cloned or fetched first."""
    with _locked(root, _key(url)):
        mirror = _mirror(root, name, url)
        try:
            return _git(["rev-parse", "--verify", "--quiet", f"{ref or 'HEAD'}^{{commit}}"], mirror, name, url,
                        "resolve")
        except CorpusError as exc:
            raise CorpusError(f"repository {name!r}: {url} has no branch, tag or commit {ref or 'HEAD'!r}") from exc


_CHECKED_OUT: dict[tuple[str, str, str], Path] = {}  # per process: (root, url, commit) -> work tree


def checkout(root: Path, name: str, url: str, sha: str) -> Path:
    """A work tree of `url` at commit `sha` under `root`, made (and the mirror cloned or fetched) when this host
    has none yet; reused by the next build."""
    known = _CHECKED_OUT.get((str(root), url, sha))
    if known is not None:
        return known
    key = _key(url)
    tree = root / f"{key}.trees" / sha
    with _locked(root, key):
        mirror = root / f"{key}.git"
        if not (mirror.is_dir() and _has_commit(mirror, sha)):
            mirror = _mirror(root, name, url)
            if not _has_commit(mirror, sha):  # a commit no branch or tag holds any more
                _git(["fetch", "--quiet", "origin", sha], mirror, name, url, f"fetch commit {sha} from")
        done = tree.with_name(f"{sha}.done")
        if not done.is_file():
            shutil.rmtree(tree, ignore_errors=True)  # left by a checkout that was killed
            _git(["worktree", "prune"], mirror, name, url, "prune the work trees of")
            _git(["worktree", "add", "--quiet", "--detach", str(tree), sha], mirror, name, url,
                 f"check out {sha} of")
            done.touch()
    _CHECKED_OUT[(str(root), url, sha)] = tree
    return tree


@dataclass(frozen=True)
class Survey:
    """What the driver needs of a repository cloned elsewhere: its commit, where the clone is on the host that
    made it, its candidate files (relative paths, sorted) with discovery's counts, and for `--eval-since` the
    files a commit at or after the cut-off touched."""

    commit: str
    path: str
    names: list[str]
    counts: dict[str, int]
    method: str
    changed: set[str] | None


def survey(repo: RepoSpec, clone_dir: str | None, since: int | None) -> Survey:
    """Clone or fetch `repo.url`, check out `repo.ref` and discover its files, on this host."""
    root = root_of(clone_dir)
    sha = resolve(root, repo.name, repo.url, repo.ref)
    tree = checkout(root, repo.name, repo.url, sha)
    counts: Counter = Counter()
    local = replace(repo, path=tree)
    found = discover.discover(local, counts)
    return Survey(sha, str(tree), [c.path for c in found], dict(counts), discover.discovery_method(local),
                  git_changed_since(tree, since) if since is not None else None)
