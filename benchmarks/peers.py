"""Peer implementations (TRL) in their own environments, created by the benchmark that needs them.

Each peer gets a virtual environment under benchmarks/.envs/ with only the peer installed (pinned, --no-deps). It
reads every other package -- torch, transformers, datasets, accelerate -- from this project's environment through a
.pth file, so both sides of a comparison run the very same torch and transformers builds, and the project's own
environment never gets the peer installed.
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

ENVS = Path(__file__).resolve().parent / ".envs"
FORMAT = 2  # bump when the environment layout changes, to rebuild existing ones


def peer_python(package: str, version: str) -> str:
    """The python of an environment that has `package==version` on top of this project's packages."""
    env = ENVS / f"{package}-{version}"
    python = env / "bin" / "python"
    ready = env / ".ready"
    if not ready.exists() or ready.read_text() != f"{package}=={version} format {FORMAT}\n":
        venv.EnvBuilder(clear=True, with_pip=True).create(env)
        site = subprocess.check_output([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                       text=True).strip()
        # addsitedir (not a bare path line) so the project environment's own .pth files -- the editable install
        # of pairwise_rl among them -- are processed too
        Path(site, "project_env.pth").write_text(
            f"import site; site.addsitedir({sysconfig.get_paths()['purelib']!r})\n")
        # trl's own requirements (accelerate, datasets, pandas, pyarrow, jinja2) are all in the project's pins
        subprocess.check_call([str(python), "-m", "pip", "install", "-q", "--no-deps", f"{package}=={version}"])
        ready.write_text(f"{package}=={version} format {FORMAT}\n")
    return str(python)


def run_peer(python: str, script: Path, *args: str) -> str:
    """Run a peer-side script; its last stdout line is its JSON result."""
    result = subprocess.run([python, str(script), *args], capture_output=True, text=True)
    if result.returncode != 0:
        sys.stderr.write(result.stdout[-2000:] + result.stderr[-4000:])
        raise RuntimeError(f"{script.name} failed (exit {result.returncode})")
    return result.stdout.strip().splitlines()[-1]
