"""Every `pairwise-rl ...` command in the README and docs/ composes and validates as written (run, they take
minutes to hours; composing catches a renamed key, group or option, and validate() an impossible value). A sweep's
comma list is composed at its first value, as its first job would be."""

import re
import shlex
from pathlib import Path

import pytest

from pairwise_rl.config import ConfigError, validate
from tests.conftest import ROOT, compose_config

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FLAGS_WITHOUT_VALUE = {"-m", "--multirun", "--help", "-h", "--hydra-help"}
FLAGS_WITH_VALUE = {"--cfg", "-c", "--info", "-i"}


def commands(page: Path):
    """(line number, argv, the error it is shown to print or None) of every pairwise-rl command in the page's code
    blocks, continuation lines joined; a `$ pairwise-rl ...` transcript followed by `error: ...` shows a failure."""
    found, in_code, pending, start = [], False, "", 0
    lines = page.read_text().splitlines()
    for number, line in enumerate(lines, start=1):
        if line.startswith("```"):
            in_code = not in_code
            continue
        if not in_code:
            continue
        text = pending + line.split("  #")[0].strip()
        if text.endswith("\\"):
            pending, start = text[:-1] + " ", start or number
            continue
        pending = ""
        match = re.match(r"^(?:\$ )?(?:srun .*? )?(?:\S+/)?pairwise-rl(\s.*)?$", text)
        if match:
            shown = lines[number] if number < len(lines) else ""
            error = shown[len("error: "):] if text.startswith("$ ") and shown.startswith("error: ") else None
            found.append((start or number, shlex.split(match.group(1) or ""), error))
        start = 0
    return found


def overrides_of(argv):
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in FLAGS_WITH_VALUE:
            skip = True
        elif arg not in FLAGS_WITHOUT_VALUE and not arg.startswith("hydra."):
            key, _, value = arg.partition("=")
            value = re.sub(r"<[^>]*>", "placeholder", value)  # multirun/<date>/<time>, rm.path=<RM>
            if "," in value and not value.startswith(("[", "'", '"', "{")):
                value = value.split(",")[0]  # the sweep's first job
            out.append(f"{key}={value}")
    return out


CASES = [(page.name, number, argv, error) for page in PAGES for number, argv, error in commands(page)]


def test_the_pages_have_commands_to_check():
    assert sum(1 for case in CASES if case[0] == "README.md") >= 10
    assert any(error for *_, error in CASES)  # the README's error transcript is read as one


@pytest.mark.parametrize("page,line,argv,error", CASES, ids=[f"{c[0]}:{c[1]}" for c in CASES])
def test_every_documented_command_composes_and_validates(page, line, argv, error, tmp_path):
    overrides = overrides_of(argv)
    if any(o.startswith("sweep=slurm") for o in overrides):
        pytest.skip("sweep=slurm composes only with Hydra's launcher config (tests/test_config.py checks it)")
    cfg = compose_config(overrides, tmp_path)
    if error is None:
        validate(cfg)
    else:  # the page shows this command failing: it must fail with exactly that message
        with pytest.raises(ConfigError) as caught:
            validate(cfg)
        assert str(caught.value) == error
