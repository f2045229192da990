"""Shared pieces of the benchmarks: a tiny model of the default size, digits data, timing, and the report files.

Every comparison is a ratio of two timings taken in the same process, on the same model and inputs, so the
numbers mean something on a shared, noisy machine. Each benchmark writes <name>.json and <name>.md under
benchmarks/results/ (or --out).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

import torch

from pairwise_rl import hardware
from pairwise_rl.tasks.digits import sample_problems

RESULTS = Path(__file__).resolve().parent / "results"


def arguments(description: str, extra: Optional[Callable[[argparse.ArgumentParser], object]] = None
              ) -> argparse.Namespace:
    """The options every benchmark takes; `extra` adds a benchmark's own."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the JSON and markdown reports go")
    parser.add_argument("--repeats", type=int, default=5, help="timed repetitions (the median is reported)")
    parser.add_argument("--n", type=int, default=None, help="samples per repetition (default: the benchmark's own)")
    parser.add_argument("--model", choices=("tiny", "smollm2"), default="tiny",
                        help="tiny: the default digits model; smollm2: SmolLM2-135M-Instruct on HH-RLHF rows "
                             "(benchmarks/real.py; `make bench-real`), reported as <name>_real")
    if extra is not None:
        extra(parser)
    return parser.parse_args()


def report_name(name: str, args: argparse.Namespace) -> str:
    return name if args.model == "tiny" else f"{name}_real"


def default_model_dir() -> str:
    """The default tiny policy (conf/model/tiny_llama.yaml sizes), saved with save_pretrained like a stage does."""
    from omegaconf import OmegaConf

    from pairwise_rl.models.factory import build_tiny_causal_lm
    from pairwise_rl.models.tokenizer import build_char_tokenizer

    tiny = OmegaConf.load(Path(__file__).resolve().parent.parent / "conf" / "model" / "tiny_llama.yaml").tiny
    tokenizer = build_char_tokenizer()
    directory = tempfile.mkdtemp(prefix="bench-model-")
    build_tiny_causal_lm(tiny, tokenizer, seed=0).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def digits_rows(n: int, seed: int = 0):
    """(prompt, target) pairs of the digits task: realistic prompt and response lengths."""
    problems = sample_problems("test", n, seed, ["sort", "reverse", "add"], 3, 8, 999)
    return [p.prompt for p in problems], [p.target for p in problems]


def interleaved_medians(fns: Dict[str, Callable[[], object]], repeats: int) -> Dict[str, float]:
    """Median seconds of each function, timed in alternation (a, b, a, b, ...) so that drift in the machine's
    speed (other tenants, thermal) hits both sides of a ratio alike."""
    for fn in fns.values():
        fn()  # warm-up: allocator, thread pools, lazy imports
    times: Dict[str, List[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def write_report(out: Path, name: str, result: Dict, table: List[List[str]], header: List[str], notes: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    machine = hardware.machine()  # a number is never compared across CPU types by accident
    result = {"benchmark": name, "torch_threads": torch.get_num_threads(), "machine": machine, **result}
    (out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [f"# {name}", "", notes, "", f"Machine: {machine['cpu']}, torch {machine['torch_cpu_capability']} kernels, "
             f"{torch.get_num_threads()} thread(s).", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in table]
    (out / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
