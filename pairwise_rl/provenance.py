"""What built an artifact: this package's source, its version, the git state of a checkout, the pinned libraries.

`code_version` is a short hash of two things: the content of every .py file in the package, and the installed
versions of the libraries pyproject pins. Any edit under pairwise_rl/ (committed or not) and any other torch,
transformers, lightning... changes it. That hash, not the git commit, is what the cache policies compare: a commit
does not see uncommitted edits, and an installed wheel has no commit at all. The commit and dirty flag are recorded
beside it so a person can find the code again.

Computed once per process (the code a process runs is the code it imported); tests point it at a copy of the
package with `describe(root)`.
"""

from __future__ import annotations

import hashlib
import json
import platform
import re
import subprocess
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Dict, List, Optional

PACKAGE_ROOT = Path(__file__).resolve().parent
DISTRIBUTION = "pairwise-rl"
UNKNOWN = "unrecorded"  # the code version of an artifact built before provenance was recorded


def source_digest(root: Path) -> str:
    """sha256 over the package's .py files: their paths relative to `root` and their bytes, in a fixed order."""
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(root).rglob("*.py") if "__pycache__" not in p.parts):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def pinned_versions() -> Dict[str, str]:
    """{requirement: installed version} for every runtime requirement of the installed package (no dev extras)."""
    try:
        requirements = metadata.requires(DISTRIBUTION) or []
    except metadata.PackageNotFoundError:  # imported from a source tree that was never installed
        return {}
    versions: Dict[str, str] = {}
    for requirement in requirements:
        if "extra ==" in requirement.replace('"', "").replace("'", ""):
            continue
        name = re.match(r"[A-Za-z0-9_.\-]+", requirement).group(0)
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "missing"
    return dict(sorted(versions.items()))


def package_version() -> Optional[str]:
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return None


def _git(root: Path, *args: str) -> Optional[str]:
    try:
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def git_state(root: Path) -> Optional[Dict[str, object]]:
    """{commit, dirty} when `root` is tracked in a git checkout, else None (an installed wheel, a copied tree).

    The package must itself be tracked: a virtualenv inside some other repository is not that repository's code.
    """
    if not (_git(root, "ls-files", ".") or "").strip():
        return None
    commit = (_git(root, "rev-parse", "HEAD") or "").strip()
    status = _git(root, "status", "--porcelain")
    if not commit or status is None:
        return None
    return {"commit": commit, "dirty": bool(status.strip())}


@lru_cache(maxsize=None)
def describe(root: Path = PACKAGE_ROOT) -> Dict[str, object]:
    """The provenance record of the package at `root`, as COMPLETE.json, config.yaml, W&B and result.json keep it."""
    source = source_digest(root)
    packages = pinned_versions()
    version = hashlib.sha256(json.dumps({"source": source, "packages": packages}, sort_keys=True).encode())
    return {"code_version": version.hexdigest()[:12], "source_digest": source,
            "package_version": package_version(), "git": git_state(root),
            "python": platform.python_version(), "packages": packages}


def current() -> Dict[str, object]:
    return describe(PACKAGE_ROOT)


def code_version(record: Optional[Dict[str, object]]) -> str:
    return str(record["code_version"]) if record else UNKNOWN


def label(record: Optional[Dict[str, object]]) -> str:
    """'3f2a9c1b07de (commit 23d83a7, dirty; pairwise-rl 0.1.0)': short enough for a log line or a table cell."""
    if not record:
        return f"{UNKNOWN} code (built before provenance was recorded)"
    parts: List[str] = []
    git = record.get("git")
    if git:
        parts.append(f"commit {str(git['commit'])[:7]}{', dirty' if git['dirty'] else ''}")
    if record.get("package_version"):
        parts.append(f"pairwise-rl {record['package_version']}")
    return f"{record['code_version']} ({'; '.join(parts)})" if parts else str(record["code_version"])


def differences(built: Optional[Dict[str, object]], now: Dict[str, object]) -> List[str]:
    """What changed between two records, in words: 'source', 'torch 2.12.0 -> 2.13.0', ..."""
    if not built:
        return ["no record of the code that built it"]
    changed = ["package source"] if built.get("source_digest") != now.get("source_digest") else []
    old, new = dict(built.get("packages") or {}), dict(now.get("packages") or {})
    changed += [f"{name} {old.get(name, 'absent')} -> {new.get(name, 'absent')}"
                for name in sorted(set(old) | set(new)) if old.get(name) != new.get(name)]
    return changed
