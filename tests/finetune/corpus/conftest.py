"""Fixtures for the corpus builder: real code nobody here wrote, copied into temporary git repositories."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

SITE = Path(__file__).resolve().parents[3] / ".venv" / "lib" / "python3.11" / "site-packages"


def package_source(name: str) -> Path:
    import importlib

    module = importlib.import_module(name)
    return Path(module.__file__).parent


def git(repo: Path, *args: str, date: str | None = None) -> None:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com", "PATH": "/usr/bin:/bin:/usr/local/bin", "HOME": str(repo)}
    if date:
        env["GIT_AUTHOR_DATE"] = env["GIT_COMMITTER_DATE"] = f"{date}T12:00:00+00:00"
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, env=env)


def make_git_repo(root: Path, files: dict[str, str] | None = None, copy_from: Path | None = None,
                  date: str = "2024-01-01") -> Path:
    """A git repository at `root` holding `files` and/or a copy of a package's .py sources, committed."""
    root.mkdir(parents=True, exist_ok=True)
    if copy_from is not None:
        for src in sorted(copy_from.rglob("*.py")):
            if "__pycache__" in src.parts:
                continue
            dest = root / copy_from.name / src.relative_to(copy_from)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)
    for rel, text in (files or {}).items():
        dest = root / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(text, encoding="utf-8")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "import", date=date)
    return root


@pytest.fixture(scope="session")
def tqdm_repo(tmp_path_factory) -> Path:
    """The tqdm package's source (31 files, ~160 kB of real Python) as a git repository."""
    return make_git_repo(tmp_path_factory.mktemp("repos") / "tqdm-src", copy_from=package_source("tqdm"))


@pytest.fixture(scope="session")
def corpus_cfg(tiny_model_dir):
    from finetune.corpus.config import CorpusConfig

    def make(**kw):
        kw.setdefault("model", str(tiny_model_dir))
        kw.setdefault("workers", 1)
        kw.setdefault("max_examples_per_file", 4)
        return CorpusConfig(**kw)

    return make


@pytest.fixture(scope="session")
def tqdm_dataset(tmp_path_factory, tqdm_repo, corpus_cfg):
    """One dataset built from the tqdm repository with the tiny model's tokenizer (format starcoder)."""
    from finetune.corpus.pipeline import build
    from finetune.corpus.repos import from_paths

    out = tmp_path_factory.mktemp("datasets") / "tqdm"
    manifest = build(from_paths([tqdm_repo]), out, corpus_cfg(eval_fraction=0.15, dev_fraction=0.1), progress=False)
    return out, manifest


@pytest.fixture(scope="session")
def history_repo(tmp_path_factory) -> Path:
    """tqdm's sources committed in 2023, then two files changed or added in 2025: a repository whose
    `--eval-since 2025-01-01` exam depends on its history."""
    src = package_source("tqdm")
    repo = make_git_repo(tmp_path_factory.mktemp("history") / "proj",
                         {f"tqdm/{p.name}": p.read_text() for p in sorted(src.glob("*.py"))}, date="2023-03-01")
    with open(repo / "tqdm" / "utils.py", "a") as fh:
        fh.write("\n\ndef added_later(x):\n    return x * 2\n")
    (repo / "tqdm" / "brand_new.py").write_text("def fresh(a, b):\n    total = a + b\n    return total\n" * 3)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "recent work", date="2025-06-01")
    return repo


@pytest.fixture(scope="session")
def history_dataset(tmp_path_factory, history_repo, corpus_cfg):
    """The dataset of `history_repo` read from its path, with an exam of the files changed since 2025."""
    from finetune.corpus.pipeline import build
    from finetune.corpus.repos import from_paths

    out = tmp_path_factory.mktemp("datasets") / "history"
    manifest = build(from_paths([history_repo]), out, corpus_cfg(eval_since="2025-01-01", dev_fraction=0.1),
                     progress=False)
    return out, manifest


def write_repos_toml(path: Path, url: str, **extra: str) -> Path:
    """A repos.toml with one repository given by `url`."""
    lines = ["[[repo]]", f"url = {url!r}", *(f"{k} = {v!r}" for k, v in extra.items())]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
