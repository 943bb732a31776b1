"""Which build of the code this is: the Worker Deployment Version a worker runs as.

`WORKER_BUILD_ID` when set (a release pipeline passes its git sha); else the package
version and a hash of the code the worker runs (workflows, activities, shared), so any
change to it is a new build and a session run stays on the build that started it."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shared.config import Settings

ROOT = Path(__file__).resolve().parents[1]
CODE_PACKAGES = ("workflows", "activities", "shared")


def package_version() -> str:
    try:
        return version("temporal-chatbot")
    except PackageNotFoundError:
        return "0.0.0"


def code_hash(root: Path = ROOT) -> str:
    """sha256 over the worker's Python sources and data, by relative path: the same tree
    gives the same hash on any machine (no mtimes, no caches)."""
    digest = hashlib.sha256()
    for package in CODE_PACKAGES:
        for path in sorted((root / package).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                digest.update(str(path.relative_to(root)).encode())
                digest.update(b"\0")
                digest.update(path.read_bytes())
                digest.update(b"\0")
    return digest.hexdigest()


@lru_cache(maxsize=1)
def default_build_id() -> str:
    """Read once per process: the code a process runs does not change under it, and the
    hash reads every source file."""
    return f"{package_version()}-{code_hash()[:12]}"


def build_id(settings: Settings) -> str:
    """The build this worker runs as: WORKER_BUILD_ID, else derived from the code."""
    return settings.worker_build_id or default_build_id()
