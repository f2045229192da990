"""What built an artifact: the source hash sees any edit, the git state is read from a real checkout."""

import shutil
import subprocess
from pathlib import Path

import pytest

from pairwise_rl import provenance

PACKAGE = Path(provenance.__file__).resolve().parent


def test_the_source_digest_sees_content_and_names_not_caches(tmp_path):
    copy = tmp_path / "pairwise_rl"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    before = provenance.source_digest(copy)
    assert before == provenance.source_digest(PACKAGE)

    (copy / "__pycache__").mkdir(exist_ok=True)
    (copy / "__pycache__" / "junk.py").write_text("x = 1\n")  # bytecode dirs are not source
    assert provenance.source_digest(copy) == before

    loss = copy / "algos" / "ppo.py"
    loss.write_text(loss.read_text() + "\n# a bug fix\n")
    edited = provenance.source_digest(copy)
    assert edited != before

    loss.rename(copy / "algos" / "ppo_renamed.py")  # same bytes under another name is other code
    assert provenance.source_digest(copy) not in (before, edited)


def test_the_record_names_the_pinned_libraries_and_not_the_dev_extras():
    record = provenance.describe(PACKAGE)
    assert record["packages"]["torch"].startswith("2.13.0")
    assert {"transformers", "lightning", "hydra-core", "omegaconf", "wandb", "datasets"} <= set(record["packages"])
    assert "pytest" not in record["packages"]
    assert record["package_version"] == "0.1.0"
    assert len(record["code_version"]) == 12 and record["code_version"] == provenance.current()["code_version"]


def test_git_state_reads_commit_and_dirty_flag_of_a_checkout(tmp_path):
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    repo = tmp_path / "repo"
    package = repo / "pkg"
    package.mkdir(parents=True)
    (package / "mod.py").write_text("x = 1\n")
    assert provenance.git_state(package) is None  # not a repository

    def git(*args):
        return subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args],
                              check=True, capture_output=True, text=True).stdout.strip()

    git("init", "-q")
    assert provenance.git_state(package) is None  # a repository, but the package is not tracked in it
    git("add", ".")
    git("commit", "-q", "-m", "first")
    head = git("rev-parse", "HEAD")
    assert provenance.git_state(package) == {"commit": head, "dirty": False}
    (package / "mod.py").write_text("x = 2\n")
    assert provenance.git_state(package) == {"commit": head, "dirty": True}


def test_labels_and_differences_say_what_changed():
    old = {"code_version": "aaaaaaaaaaaa", "source_digest": "s1", "package_version": "0.1.0",
           "git": {"commit": "0123456789abcdef", "dirty": True}, "packages": {"torch": "2.12.0", "numpy": "2.4.6"}}
    new = {"code_version": "bbbbbbbbbbbb", "source_digest": "s2", "package_version": "0.1.0", "git": None,
           "packages": {"torch": "2.13.0", "numpy": "2.4.6", "peft": "0.21.2"}}
    assert provenance.label(old) == "aaaaaaaaaaaa (commit 0123456, dirty; pairwise-rl 0.1.0)"
    assert provenance.label(new) == "bbbbbbbbbbbb (pairwise-rl 0.1.0)"
    assert provenance.differences(old, new) == ["package source", "peft absent -> 0.21.2", "torch 2.12.0 -> 2.13.0"]
    assert provenance.differences(None, new) == ["no record of the code that built it"]
    assert provenance.code_version(None) == provenance.UNKNOWN
