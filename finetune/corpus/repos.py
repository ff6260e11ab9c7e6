"""The input repositories: paths given on the command line or a `repos.toml` listing name, path or git URL,
team, visibility.

`repos.toml`::

    [[repo]]
    name = "billing"           # defaults to the directory name
    path = "../billing"        # relative to the file
    team = "payments"          # optional, recorded in the manifest
    visibility = "internal"    # optional, recorded in the manifest

    [[repo]]
    url = "https://git.example.com/payments/ledger.git"  # instead of `path`: cloned by the build (clone.py)
    ref = "release-7"          # optional branch, tag or commit; default: the remote's HEAD
    name = "ledger"            # defaults to the URL's last part without .git
"""

from __future__ import annotations

import datetime
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path

from core.errors import CorpusError


@dataclass(frozen=True)
class RepoSpec:
    name: str
    path: Path  # for a repository given by URL, unused until the build has cloned it
    team: str = ""
    visibility: str = ""
    url: str = ""  # a git URL the build clones instead of reading `path`
    ref: str = ""  # with `url`: the branch, tag or commit to read; empty: the remote's HEAD


def name_of(url: str) -> str:
    """A repository's default name when given by URL: the last part of the URL without `.git`."""
    tail = url.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1]
    return tail[:-4] if tail.endswith(".git") else tail


def from_paths(paths: list[Path]) -> list[RepoSpec]:
    return [RepoSpec(name=Path(p).resolve().name, path=Path(p)) for p in paths]


def read_repos_toml(path: Path) -> list[RepoSpec]:
    """Parse a repos.toml; a clear CorpusError names the file and the entry that is wrong."""
    path = Path(path)
    if not path.is_file():
        raise CorpusError(f"repository list {str(path)!r} does not exist")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise CorpusError(f"{path}: cannot read it as TOML: {exc}") from exc
    rows = data.get("repo", data.get("repos"))
    if not isinstance(rows, list) or not rows:
        raise CorpusError(f"{path}: must hold one or more [[repo]] tables with a `path`")
    out = []
    for i, row in enumerate(rows):
        where = f"{path}: [[repo]] number {i + 1}"
        if not isinstance(row, dict):
            raise CorpusError(f"{where} must be a table")
        unknown = set(row) - {"name", "path", "url", "ref", "team", "visibility"}
        if unknown:
            raise CorpusError(f"{where} has unknown keys {sorted(unknown)}")
        if ("path" in row) == ("url" in row):
            raise CorpusError(f"{where} needs a string `path` or a string `url`, not both")
        for key in ("path", "url", "ref", "name"):
            if key in row and (not isinstance(row[key], str) or not row[key]):
                raise CorpusError(f"{where}: `{key}` must be a non-empty string, got {row[key]!r}")
        if "ref" in row and "url" not in row:
            raise CorpusError(f"{where}: `ref` goes with a `url`")
        team, visibility = str(row.get("team", "")), str(row.get("visibility", ""))
        if "url" in row:
            out.append(RepoSpec(name=row.get("name") or name_of(row["url"]), path=Path(), team=team,
                                visibility=visibility, url=row["url"], ref=row.get("ref", "")))
            continue
        repo_path = (path.parent / row["path"]) if not Path(row["path"]).is_absolute() else Path(row["path"])
        out.append(RepoSpec(name=str(row.get("name") or repo_path.resolve().name), path=repo_path, team=team,
                            visibility=visibility))
    return out


def check_repos(repos: list[RepoSpec]) -> list[RepoSpec]:
    """Every path must be an existing directory and every name unique (a URL is checked by cloning it)."""
    if not repos:
        raise CorpusError("no repository given (pass REPO paths or --repos repos.toml)")
    seen: dict[str, Path | str] = {}
    for repo in repos:
        if repo.url:
            if repo.name in seen:
                raise CorpusError(f"two repositories are named {repo.name!r} ({seen[repo.name]} and {repo.url}); "
                                  "give them distinct names in repos.toml")
            seen[repo.name] = repo.url
            continue
        if not repo.path.exists():
            raise CorpusError(f"repository path {str(repo.path)!r} does not exist")
        if not repo.path.is_dir():
            raise CorpusError(f"repository path {str(repo.path)!r} is not a directory")
        if repo.name in seen:
            raise CorpusError(f"two repositories are named {repo.name!r} ({seen[repo.name]} and {repo.path}); "
                              "give them distinct names in repos.toml")
        seen[repo.name] = repo.path
    return repos


def git_toplevel(path: Path) -> Path | None:
    """The top of the git work tree holding `path`, or None when `path` is not inside one or that work tree
    ignores it (a copy of sources under an ignored folder of another repository is treated as a plain folder).
    """
    try:
        out = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=path, capture_output=True, text=True,
                             timeout=30, check=False)
        if out.returncode != 0:
            return None
        top = Path(out.stdout.strip())
        if top.resolve() != Path(path).resolve():
            ignored = subprocess.run(["git", "check-ignore", "-q", "."], cwd=path, capture_output=True, timeout=30,
                                     check=False)
            if ignored.returncode == 0:
                return None
    except (OSError, subprocess.TimeoutExpired):
        return None
    return top


def git_commit(path: Path) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True, timeout=30,
                             check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_changed_since(path: Path, timestamp: int) -> set[str]:
    """Paths (relative to the repository) touched by a commit of HEAD's history whose committer date is at or
    after `timestamp` (seconds since the epoch): the files whose last commit is that recent.

    The cut-off goes to git as a full UTC time (git reads a bare date as that day at the current time of day,
    local time), with `--since-as-filter` (git 2.38+: every commit is looked at; `--since` stops walking a line of
    history at its first older commit, which misses newer ones behind a commit with a skewed clock)."""
    since = datetime.datetime.fromtimestamp(timestamp, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")
    for option in ("--since-as-filter", "--since"):
        try:
            out = subprocess.run(["git", "log", f"{option}={since}", "--name-only", "--pretty=format:",
                                  "-z", "HEAD"], cwd=path, capture_output=True, timeout=300, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise CorpusError(f"{path}: `git log` failed: {exc}") from exc
        if out.returncode == 0 or option.encode() not in out.stderr:  # an older git names the unknown option
            break
    if out.returncode != 0:
        return set()  # an empty repository has no history to hold out
    names = out.stdout.decode("utf-8", "surrogateescape").replace("\n", "\0").split("\0")
    return {n for n in names if n}
