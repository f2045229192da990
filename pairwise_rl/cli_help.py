"""`pairwise-rl --help`: what the tool is, its stages (one line each), its config groups and where to read more.

Read from the source and the conf/ tree rather than by importing the stages (which loads torch, Lightning and
transformers: seconds): a stage's line is the first line of the docstring of the function registered with
`@STAGES.register("<name>")`, so the help cannot drift from the registry (a test holds the two equal).
"""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path
from typing import Dict, List, Tuple

from omegaconf import OmegaConf

PACKAGE = Path(__file__).resolve().parent
INTRO = """\
pairwise-rl: compare RLHF setups, one config at a time. Traditional RLHF (a Bradley-Terry reward model and PPO on
its score) against Pairwise-RL (arXiv 2504.04950: a generative pairwise judge, and PPO on the probability that a
response beats an anchor), from a shared SFT policy, with every stage cached and every run comparable.

usage: pairwise-rl stage=<stage> [group=option ...] [key=value ...]
       pairwise-rl -m <key>=<a>,<b> ...     a sweep (Hydra multirun): one run per combination
"""
MORE = """\
more:
  pairwise-rl stage=ppo --cfg job       the composed config of a command: every key and its value
  pairwise-rl --hydra-help              Hydra's own flags (--multirun, --cfg, --info, --resolve, ...)
  docs/configuration.md                 every config key, documented; the same comments are in conf/
  HYDRA_FULL_ERROR=1 pairwise-rl ...    a traceback with an error (errors print one line and the fix)
"""


def stage_lines(stages_dir: Path = PACKAGE / "stages") -> List[Tuple[str, str]]:
    """(stage name, first docstring line) for every `@STAGES.register(...)` function in stages_dir, sorted."""
    found = []
    for path in sorted(stages_dir.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.FunctionDef):
                continue
            for decorator in node.decorator_list:
                if (isinstance(decorator, ast.Call) and isinstance(decorator.func, ast.Attribute)
                        and decorator.func.attr == "register" and getattr(decorator.func.value, "id", "") == "STAGES"):
                    doc = (ast.get_docstring(node) or "").strip()
                    found.append((decorator.args[0].value, doc.splitlines()[0] if doc else ""))
    return sorted(found)


def config_groups(conf_dir: Path) -> Dict[str, List[str]]:
    """{group: [options]} from conf/ (experiment links to experiments/; sweeps/ is the sweep group)."""
    groups = {}
    for group_dir in sorted(p for p in conf_dir.iterdir() if p.is_dir() and p.name != "hydra"):
        groups[group_dir.name] = sorted(p.stem for p in group_dir.glob("*.yaml"))
    sweeps = conf_dir.parent / "sweeps"
    if sweeps.is_dir():
        groups["sweep"] = sorted(p.stem for p in sweeps.glob("*.yaml"))
    return groups


def defaults(conf_dir: Path) -> Dict[str, str]:
    """{group: default option} from conf/config.yaml's defaults list."""
    chosen = {}
    for entry in OmegaConf.load(conf_dir / "config.yaml").get("defaults", []):
        if isinstance(entry, str) or not OmegaConf.is_dict(entry):
            continue
        for group, option in entry.items():
            chosen[str(group)] = option
    return chosen


def help_text(conf_dir: Path) -> str:
    stages = stage_lines()
    width = max(len(name) for name, _ in stages) + 2
    lines = [INTRO, "stages (each builds what it needs first; finished artifacts are served from the cache):"]
    lines += [f"  {name:<{width}}{doc}" for name, doc in stages]
    chosen = defaults(conf_dir)
    lines += ["", "config groups (group=option; * marks the default, - means none by default):"]
    for group, options in config_groups(conf_dir).items():
        marked = [f"{o}*" if chosen.get(group) == o else o for o in options]
        suffix = "" if chosen.get(group) in options else "  (-)"
        lines += textwrap.wrap(" | ".join(marked) + suffix, 118, initial_indent=f"  {group:<{width}}",
                               subsequent_indent=" " * (width + 4), break_on_hyphens=False)
    lines += ["", MORE]
    return "\n".join(lines)
