"""Preference-model metrics with one code path for every RM: everything is a function of P(y1 beats y2).

probs: the model's P(y1 beats y2) per pair; labels: 1 if y1 was the annotator's choice, else 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import torch


def accuracy(probs: torch.Tensor, labels: torch.Tensor) -> float:
    """Share of pairs where the more probable response is the labelled one (p = 0.5 counts as half right)."""
    predicted = (probs > 0.5).float() + 0.5 * (probs == 0.5).float()
    return float((predicted * labels + (1 - predicted) * (1 - labels)).mean())


def nll(probs: torch.Tensor, labels: torch.Tensor, eps: float = 1e-7) -> float:
    """Mean negative log-likelihood of the labels."""
    p = probs.double().clamp(eps, 1 - eps)
    return float(-(labels * p.log() + (1 - labels) * (1 - p).log()).mean())


def brier(probs: torch.Tensor, labels: torch.Tensor) -> float:
    return float(((probs.double() - labels.double()) ** 2).mean())


GROUP_RELIABILITY = "reliability_by_group.json"  # an RM artifact's {group: Reliability}: what stage=compare pools


@dataclass
class Reliability:
    """Per-bin statistics behind ECE and the reliability diagram (empty bins have count 0)."""

    edges: List[float]
    confidence: List[Optional[float]]
    frequency: List[Optional[float]]
    count: List[int]
    ece: float


def reliability(probs: torch.Tensor, labels: torch.Tensor, bins: int = 10) -> Reliability:
    """Equal-width bins over [0, 1] of P(y1 beats y2); ECE = sum_b (n_b / N) * |mean p_b - mean label_b|.

    Binning the probability itself (not max(p, 1-p)) keeps both halves of the diagram, so a judge that is
    over-confident only towards "y1 wins" shows up.
    """
    probs, labels = probs.double().flatten(), labels.double().flatten()
    index = torch.clamp((probs * bins).long(), max=bins - 1)  # p == 1.0 falls in the last bin
    confidence, frequency, count = [], [], []
    ece = 0.0
    for b in range(bins):
        in_bin = index == b
        n = int(in_bin.sum())
        count.append(n)
        if n == 0:
            confidence.append(None)
            frequency.append(None)
            continue
        conf, freq = float(probs[in_bin].mean()), float(labels[in_bin].mean())
        confidence.append(conf)
        frequency.append(freq)
        ece += n / len(probs) * abs(conf - freq)
    return Reliability([b / bins for b in range(bins + 1)], confidence, frequency, count, ece)


def pool_reliability(diagrams: Sequence[Reliability]) -> Reliability:
    """One diagram from several runs on the same bins (e.g. seeds): counts add, bin means are count-weighted, and
    ECE is recomputed from the pooled bins, so it equals the ECE of all runs' pairs judged together."""
    edges = diagrams[0].edges
    if any(d.edges != edges for d in diagrams):
        raise ValueError("pool_reliability: diagrams have different bins")
    total = sum(sum(d.count) for d in diagrams)
    confidence, frequency, count, ece_value = [], [], [], 0.0
    for b in range(len(edges) - 1):
        n = sum(d.count[b] for d in diagrams)
        count.append(n)
        if n == 0:
            confidence.append(None)
            frequency.append(None)
            continue
        conf = sum(d.confidence[b] * d.count[b] for d in diagrams if d.count[b]) / n
        freq = sum(d.frequency[b] * d.count[b] for d in diagrams if d.count[b]) / n
        confidence.append(conf)
        frequency.append(freq)
        ece_value += n / total * abs(conf - freq)
    return Reliability(list(edges), confidence, frequency, count, ece_value)


def ece(probs: torch.Tensor, labels: torch.Tensor, bins: int = 10) -> float:
    return reliability(probs, labels, bins).ece


def position_consistency(p_a_wins_y1_first: torch.Tensor, p_a_wins_y2_first: torch.Tensor) -> float:
    """Share of pairs whose verdict names the same response in both orders.

    Order 1 says y1 wins when P(A wins | y1 as A) > 0.5; order 2 says y1 wins when P(A wins | y2 as A) < 0.5.
    """
    y1_wins_first = p_a_wins_y1_first > 0.5
    y1_wins_second = p_a_wins_y2_first < 0.5
    return float((y1_wins_first == y1_wins_second).float().mean())


def preference_metrics(probs: torch.Tensor, labels: torch.Tensor, bins: int,
                       gold_labels: Optional[torch.Tensor] = None,
                       true_probs: Optional[torch.Tensor] = None) -> Dict[str, float]:
    """The metric set reported for every RM. gold_labels: 1/0 where the gold judge orders the pair (NaN on ties);
    true_probs: the annotator's real P(y1 preferred), when known (the digits oracle)."""
    metrics = {"accuracy": accuracy(probs, labels), "nll": nll(probs, labels), "brier": brier(probs, labels),
               "ece": ece(probs, labels, bins), "mean_confidence": float((probs - 0.5).abs().mean() + 0.5)}
    if gold_labels is not None:
        ordered = ~torch.isnan(gold_labels)
        if ordered.any():
            metrics["gold_accuracy"] = accuracy(probs[ordered], gold_labels[ordered])
    if true_probs is not None:
        metrics["oracle_prob_mae"] = float((probs.double() - true_probs.double()).abs().mean())
        # The ceiling: accuracy of the annotator's own probabilities on these labels (noise makes it < 1).
        metrics["annotator_accuracy"] = accuracy(true_probs, labels)
    return metrics


def length_bias(probs: torch.Tensor, labels: torch.Tensor, len_1: torch.Tensor,
                len_2: torch.Tensor) -> Dict[str, float]:
    """How often the longer response wins, under the labels and under the judge (pairs of equal length excluded).

    probs: P(y1 beats y2); labels: 1.0 where y1 was chosen; len_*: response lengths. A judge that prefers the longer
    response more often than the labels do has learned (or inherited) a length bias, the first thing RLHF games."""
    differ = len_1 != len_2
    if not differ.any():
        return {"length/pairs": 0.0, "length/tied_pairs": float(len(probs))}
    y1_longer = (len_1 > len_2)[differ]
    label_y1 = labels[differ] > 0.5
    judge_y1 = probs[differ] > 0.5
    return {"length/pairs": float(differ.sum()), "length/tied_pairs": float((~differ).sum()),
            "length/longer_wins_labels": float((label_y1 == y1_longer).float().mean()),
            "length/longer_wins_judge": float((judge_y1 == y1_longer).float().mean())}
