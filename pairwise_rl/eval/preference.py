"""Held-out evaluation of a reward model on labelled pairs: one code path for every RM mode.

Pairs are shown in a fixed random orientation (y1, y2) so that labels are not all 1 and the reliability diagram
has both halves; the metrics then only need P(y1 beats y2).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch

from pairwise_rl.data.records import Preference
from pairwise_rl.files import write_json, write_jsonl
from pairwise_rl.eval.metrics import Reliability, position_consistency, preference_metrics, reliability
from pairwise_rl.rewards.base import RewardModel
from pairwise_rl.tasks.base import GoldJudge


@dataclass
class PairSet:
    """Oriented evaluation pairs. gold_labels / true_probs exist when a gold judge does (the digits task)."""

    prompts: List[str]
    y1: List[str]
    y2: List[str]
    labels: torch.Tensor                     # 1.0 if the annotator chose y1
    gold_labels: Optional[torch.Tensor] = None  # 1.0 / 0.0 by gold score, NaN on gold ties
    true_probs: Optional[torch.Tensor] = None   # the annotator's P(y1 preferred)
    gold_y1: Optional[List[float]] = None
    gold_y2: Optional[List[float]] = None


def orient_pairs(pairs: Sequence[Preference], seed: int, gold: Optional[GoldJudge] = None) -> PairSet:
    rng = random.Random(f"orient/{seed}")
    prompts, y1, y2, labels = [], [], [], []
    for pair in pairs:
        flip = rng.random() < 0.5
        prompts.append(pair.prompt)
        y1.append(pair.rejected if flip else pair.chosen)
        y2.append(pair.chosen if flip else pair.rejected)
        labels.append(0.0 if flip else 1.0)
    gold_labels = true_probs = g1 = g2 = None
    if gold is not None:  # digits: the gold judge and the annotator's exact probabilities are known
        g1 = [gold.score(p, a) for p, a in zip(prompts, y1)]
        g2 = [gold.score(p, b) for p, b in zip(prompts, y2)]
        gold_labels = torch.tensor([float("nan") if a == b else float(a > b) for a, b in zip(g1, g2)])
        probs = [gold.pair_probability(p, a, b) for p, a, b in zip(prompts, y1, y2)]
        true_probs = None if any(q is None for q in probs) else torch.tensor(probs)
    return PairSet(prompts, y1, y2, torch.tensor(labels), gold_labels, true_probs, g1, g2)


@dataclass
class JudgedPairs:
    metrics: Dict[str, float]
    reliability: Reliability
    p: torch.Tensor
    p_first: Optional[torch.Tensor]
    p_second: Optional[torch.Tensor]


def judge_pairs(judge: RewardModel, pairs: PairSet, bins: int) -> JudgedPairs:
    probs = judge.pair_probabilities(pairs.prompts, pairs.y1, pairs.y2)
    metrics = preference_metrics(probs.p, pairs.labels, bins, pairs.gold_labels, pairs.true_probs)
    if probs.p_first is not None:  # a generative judge: how much does the presentation order matter?
        metrics["position_consistency"] = position_consistency(probs.p_first, probs.p_second)
        metrics["accuracy_first_order"] = preference_metrics(probs.p_first, pairs.labels, bins)["accuracy"]
        metrics["accuracy_second_order"] = preference_metrics(1 - probs.p_second, pairs.labels, bins)["accuracy"]
        metrics["ece_first_order"] = preference_metrics(probs.p_first, pairs.labels, bins)["ece"]
    return JudgedPairs(metrics, reliability(probs.p, pairs.labels, bins), probs.p, probs.p_first, probs.p_second)


def judged_by_group(pairs: PairSet, judged: JudgedPairs, groups: Sequence[Optional[str]],
                    bins: int) -> Dict[str, JudgedPairs]:
    """The judged pairs broken into the task's groups (digits: prompt kinds), each with the full metric set and its
    own reliability diagram: a scalar RM must be calibrated across contexts whose annotators differ in noise, and
    the per-group diagrams show whether it is. Pairs without a group are left out (a task without groups: {})."""
    out: Dict[str, JudgedPairs] = {}
    for group in dict.fromkeys(g for g in groups if g is not None):
        rows = torch.tensor([g == group for g in groups])

        def pick(values):
            return None if values is None else values[rows]

        p, labels, p_first, p_second = pick(judged.p), pick(pairs.labels), pick(judged.p_first), pick(judged.p_second)
        metrics = preference_metrics(p, labels, bins, pick(pairs.gold_labels), pick(pairs.true_probs))
        if p_first is not None:
            metrics["position_consistency"] = position_consistency(p_first, p_second)
        metrics["pairs"] = float(rows.sum())
        out[group] = JudgedPairs(metrics, reliability(p, labels, bins), p, p_first, p_second)
    return out


def write_judged_pairs(out_dir: Path, pairs: PairSet, judged: JudgedPairs) -> None:
    """Evidence: every held-out pair with its label and the judge's probabilities, beside metrics.json."""
    rows = []
    for i, prompt in enumerate(pairs.prompts):
        row = {"prompt": prompt, "y1": pairs.y1[i],
               "y2": pairs.y2[i], "label_y1_chosen": float(pairs.labels[i]), "p_y1_beats_y2": float(judged.p[i])}
        if judged.p_first is not None:
            row.update(p_a_wins_y1_first=float(judged.p_first[i]), p_a_wins_y2_first=float(judged.p_second[i]))
        if pairs.gold_y1 is not None:
            row.update(gold_y1=pairs.gold_y1[i], gold_y2=pairs.gold_y2[i])
        if pairs.true_probs is not None:
            row.update(annotator_p_y1=float(pairs.true_probs[i]))
        rows.append(row)
    write_jsonl(out_dir / "eval_pairs.jsonl", rows)
    write_json(out_dir / "metrics.json", judged.metrics)
    write_json(out_dir / "reliability.json", judged.reliability.__dict__)
