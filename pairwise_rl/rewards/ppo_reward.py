"""The sequence reward PPO optimises (`ppo.reward`), computed from any reward model through the one interface.

    scalar  r = score(y) for a judge with a score (BT, gold); a generative judge has none, so r = log-odds of
            compare(y, sft_greedy anchor): an unbounded scalar like a BT score
    anchor  r = P(y beats the prompt's anchor) (Pairwise-RL; BT: sigmoid(score(y) - score(anchor)))
    group   r_i = y_i's rating from matches against the other samples of its prompt's group: the baseline is the
            policy's own samples instead of a fixed anchor (needs ppo.samples_per_prompt >= 2). Which pairs are
            judged (ppo.group.topology: all_pairs, circular, random_reference, knockout, k_random) and how their
            outcomes become a rating (ppo.group.fit: mean_win, bradley_terry): rewards/group_matches.py

Probabilities are centred to p - 0.5 by default (ppo.center_reward). ppo.reward_transform then makes what PPO
optimises from the form's reward (algos/reward_transforms.py: none | logit | whiten | logit_whiten).
`ppo=standard` and `ppo=pairwise` are the presets scalar and anchor; this separates the effect of the RM from the
effect of the bounded, anchored reward.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import torch
from omegaconf import DictConfig

from pairwise_rl.algos.preference import log_odds
from pairwise_rl.algos.reward_transforms import REWARD_TRANSFORMS
from pairwise_rl.checks import check
from pairwise_rl.registry import Registry
from pairwise_rl.rewards.base import RewardModel
from pairwise_rl.rewards.group_matches import GroupScheme, play_group

# Named presets of ppo.reward: the conf/ppo group files and the `ppo:` field of a pipeline setup.
PPO_PRESETS = {"standard": "scalar", "pairwise": "anchor"}


@dataclass
class SequenceReward:
    reward: torch.Tensor                      # what PPO optimises (before the KL penalty)
    win_prob: Optional[torch.Tensor] = None   # P(response beats anchor), when an anchor was used
    probability: Optional[torch.Tensor] = None  # the uncentred probability the reward is (anchor, group forms):
                                                #   what ppo.reward_transform=logit turns into log-odds


@dataclass(frozen=True)
class RewardRequest:
    """One batch to reward: rows come in contiguous groups of group_size samples of one prompt."""
    prompts: Sequence[str]
    responses: Sequence[str]
    anchors: Optional[Sequence[str]]  # one per row, when the form needs an anchor
    group_size: int
    center: bool                      # probabilities p -> p - 0.5 (ppo.center_reward)
    seed: int                         # the rollout's seed: random match topologies and order coins draw from it
    group: GroupScheme = GroupScheme()

    @classmethod
    def from_config(cls, ppo: DictConfig, prompts, responses, anchors, group_size: int, seed: int) -> "RewardRequest":
        return cls(prompts, responses, anchors, group_size, ppo.center_reward, seed, GroupScheme.from_config(ppo))


@dataclass(frozen=True)
class RewardSpec:
    needs_anchor: Callable[[RewardModel], bool]
    anchor_override: Callable[[RewardModel], Optional[str]]  # a fixed anchor this form imposes, if any
    min_group_size: int
    reward: Callable[[RewardModel, RewardRequest], SequenceReward]
    is_probability: bool  # the reward is a probability (centred or not), so ppo.reward_transform=logit applies

    def check_config(self, cfg: DictConfig) -> None:
        """A group form compares a prompt's samples with each other: it needs groups, in training and evaluation."""
        n = cfg.ppo.samples_per_prompt
        check(n >= self.min_group_size, "ppo.reward", f"{cfg.ppo.reward} compares the samples of a prompt with each "
              f"other: it needs ppo.samples_per_prompt >= {self.min_group_size}, got {n}")
        if self.min_group_size > 1:
            check(cfg.eval.batch_size % cfg.eval.samples_per_prompt == 0, "eval.batch_size",
                  f"ppo.reward={cfg.ppo.reward} judges each held-out prompt's eval.samples_per_prompt samples as one "
                  f"group: eval.batch_size ({cfg.eval.batch_size}) must be a multiple of it")
        transform = REWARD_TRANSFORMS.get(cfg.ppo.reward_transform)
        check(self.is_probability or not transform.needs_probability, "ppo.reward_transform",
              f"{cfg.ppo.reward_transform} takes the log-odds of a probability reward (ppo.reward=anchor | group); "
              f"ppo.reward={cfg.ppo.reward} is already unbounded (a BT score, or a generative judge's log-odds): use "
              "none or whiten")


PPO_REWARDS: Registry[RewardSpec] = Registry("ppo reward")


def ppo_label(reward: str, advantage: str) -> str:
    """How a run names its PPO setup: the preset name where one matches, with any non-GAE estimator appended."""
    presets = {form: name for name, form in PPO_PRESETS.items()}
    return presets.get(reward, reward) + ("" if advantage == "gae" else f"+{advantage}")


def _scalar(rm: RewardModel, request: RewardRequest) -> SequenceReward:
    if rm.has_score:
        return SequenceReward(rm.score(request.prompts, request.responses))
    p = rm.compare(request.prompts, request.responses, request.anchors)
    return SequenceReward(log_odds(p), p)


def _anchor(rm: RewardModel, request: RewardRequest) -> SequenceReward:
    p = rm.compare(request.prompts, request.responses, request.anchors)
    return SequenceReward(p - 0.5 if request.center else p, p, p)


def _group(rm: RewardModel, request: RewardRequest) -> SequenceReward:
    p, _ = play_group(rm, request.prompts, request.responses, request.group_size, request.group, request.seed)
    return SequenceReward(p - 0.5 if request.center else p, probability=p)


PPO_REWARDS.register("scalar")(RewardSpec(
    needs_anchor=lambda rm: not rm.has_score,
    anchor_override=lambda rm: None if rm.has_score else "sft_greedy",
    min_group_size=1,
    reward=_scalar,
    is_probability=False,
))
PPO_REWARDS.register("anchor")(RewardSpec(
    needs_anchor=lambda rm: True,
    anchor_override=lambda rm: None,
    min_group_size=1,
    reward=_anchor,
    is_probability=True,
))
PPO_REWARDS.register("group")(RewardSpec(
    needs_anchor=lambda rm: False,
    anchor_override=lambda rm: None,
    min_group_size=2,
    reward=_group,
    is_probability=True,
))
