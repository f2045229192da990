"""stage=rm_eval: any reward model on any preference file, with no training.

    pairwise-rl stage=rm_eval rm.path=<rm artifact dir | saved RM dir | HF dir | hub id> \
        data=jsonl data.path=prefs.jsonl data.fields.chosen=good data.fields.rejected=bad

Every readable row of the file is judged (no split: the file is the test set). Prints and writes (to the run
directory) the RM stage's calibration table -- accuracy, NLL, Brier, ECE, position consistency and each order
alone for a pairwise judge -- plus length bias (how often the longer response wins under the labels and under the
RM), eval_pairs.jsonl with every pair's probabilities, and reliability.png. A plain HF directory or hub id is
read as rm.mode (bt: a sequence-classification head; generative: the LM's verdict tokens).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict

import torch
from omegaconf import DictConfig

from pairwise_rl.distributed import compute_device
from pairwise_rl.files import write_json
from pairwise_rl.eval.judge import load_rm
from pairwise_rl.eval.metrics import length_bias
from pairwise_rl.eval.plots import plot_reliability
from pairwise_rl.eval.preference import judge_pairs, orient_pairs, write_judged_pairs
from pairwise_rl.eval.report import print_table
from pairwise_rl.precision import autocast
from pairwise_rl.stages.registry import STAGES
from pairwise_rl.stages.rm import TABLE_METRICS
from pairwise_rl.tasks.preferences import read_dataset

log = logging.getLogger(__name__)


@STAGES.register("rm_eval")
def rm_eval_command(cfg: DictConfig) -> Dict[str, float]:
    """Evaluate a trained RM (rm.path=...) on a preference file: accuracy, NLL, ECE, position consistency."""
    d = cfg.data
    judge = load_rm(cfg.rm.path, cfg.rm.mode, cfg)
    if judge.model is not None:
        judge.model.to(compute_device(cfg.trainer))
    tokenizer = judge.tokenizer
    records, report = read_dataset(d, tokenizer)  # the RM's own tokenizer sets the truncation
    if not records:
        raise ValueError(f"data.path={d.path}: no readable pairs ({report.rows} rows, skipped {dict(report.skipped)})")
    pairs = orient_pairs(records, seed=0)
    with autocast(cfg):  # the judge computes in trainer.precision, as inside any stage
        judged = judge_pairs(judge, pairs, cfg.rm.ece_bins)
    lengths = [torch.tensor([float(len(tokenizer(t, add_special_tokens=False)["input_ids"])) for t in side])
               for side in (pairs.y1, pairs.y2)]
    metrics = {**judged.metrics, **length_bias(judged.p, pairs.labels, *lengths), **report.as_metrics(),
               "pairs": float(len(records))}
    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_judged_pairs(out, pairs, judged)
    write_json(out / "metrics.json", metrics)
    plot_reliability({judge.mode: judged.reliability}, out / "reliability.png",
                     title=f"{judge.mode} RM on {Path(str(d.path)).name}")
    shown = [m for m in (*TABLE_METRICS, "length/longer_wins_labels", "length/longer_wins_judge") if m in metrics]
    print_table(f"RM {cfg.rm.path} ({judge.mode}) on {d.path} (n={len(records)} pairs)",
                {m: {"value": metrics[m]} for m in shown})
    log.info("rm_eval: %s", out)
    return metrics
