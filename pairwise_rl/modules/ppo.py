"""PPO for every reward form (scalar | anchor | group) and advantage estimator (gae | grpo | rloo | reinforce_pp) as
one LightningModule with manual optimisation.

One training step = one PPO iteration: sample ppo.samples_per_prompt responses to each rollout prompt, score them
(RM, anchors, frozen reference), turn rewards and KL into advantages (a critic's GAE, or a group or batch baseline),
then several epochs of clipped policy updates (and value updates, when there is a critic) over minibatches of whole
groups. The math is in algos/, the rewards in rewards/; this module owns the loop. A critic-free estimator builds,
trains and checkpoints no critic at all.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence

import lightning as L
import torch
from omegaconf import DictConfig
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from pairwise_rl import distributed
from pairwise_rl.algos.advantages import ADVANTAGE_ESTIMATORS, AdvantageInputs
from pairwise_rl.algos.kl import kl_penalty
from pairwise_rl.algos.ppo import (AdaptiveKLController, FixedKLController, entropy_from_logits, explained_variance,
                                   kl_horizon, masked_mean, masked_sum, policy_loss, token_logprobs, value_loss)
from pairwise_rl.algos.reward_transforms import transform_reward
from pairwise_rl.data.batches import step_loader, step_seed
from pairwise_rl.data.records import Prompt
from pairwise_rl.distributed import compute_device
from pairwise_rl.files import write_jsonl
from pairwise_rl.eval.policy import repeat_for_sampling
from pairwise_rl.models.generation import eval_chunks
from pairwise_rl.models.generation import generate
from pairwise_rl.models.heads import hidden_states, lm_head_logits, scalar_head
from pairwise_rl.models.sampling import SamplingCopy
from pairwise_rl.models.sharding import local_fraction, parallelize
from pairwise_rl.modules.guard import NonFiniteGuard
from pairwise_rl.modules.optim import adamw
from pairwise_rl.precision import computes_below_fp32
from pairwise_rl.rewards.anchors import AnchorContext, build_anchor
from pairwise_rl.rewards.base import RewardModel
from pairwise_rl.rewards.ppo_reward import PPO_REWARDS, RewardRequest
from pairwise_rl.tasks.base import Task


def rollout_logprobs_for(setting: str, low_precision: bool) -> str:
    """ppo.rollout_logprobs with auto decided: read them while sampling (no extra pass) where the policy computes
    in fp32 (there they equal a fresh forward to 1e-5); recompute them with the policy where it computes below fp32.
    Measured on SmolLM2 under bf16-mixed, sampling from the bf16 copy: the read logprobs put the first ratio 4.5e-2
    from 1 on average (0.27 at most) and the KL at iteration 0 at +0.23 nats; recomputed, both are exactly 0."""
    if setting != "auto":
        return setting
    return "forward" if low_precision else "generation"


def _response_hidden(model: PreTrainedModel, sequences: torch.Tensor, attention_mask: torch.Tensor,
                     prompt_len: int) -> torch.Tensor:
    """Hidden states at the positions that predict each response token: P-1 .. P+R-2."""
    return hidden_states(model, sequences, attention_mask)[:, prompt_len - 1:-1]


@dataclass
class Samples:
    """Responses to a batch of prompts, with everything needed to judge them (no critic quantities)."""

    prompts: List[Prompt]
    sequences: torch.Tensor
    attention_mask: torch.Tensor
    prompt_len: int
    response_ids: torch.Tensor
    mask: torch.Tensor                # (B, R) float, 1 on response tokens
    texts: List[str]
    logprobs: torch.Tensor
    ref_logprobs: torch.Tensor
    reward: Optional[torch.Tensor]    # sequence reward PPO optimises (pre-KL); None where undefined (a group
                                      #   reward on groups of one: greedy evaluation)
    win_prob: Optional[torch.Tensor]  # P(response beats anchor)
    anchors: Optional[List[str]]
    gold: Optional[torch.Tensor]      # gold score where a gold judge exists
    rows_judged: int = 0              # sequences the RM read to reward these samples (anchors included)
    probability: Optional[torch.Tensor] = None  # the uncentred probability a probability reward is (anchor, group)

    @staticmethod
    def join(parts: List["Samples"]) -> "Samples":
        """The per-row fields of several chunks (token tensors differ in width and are left out)."""
        def cat(name: str) -> Optional[torch.Tensor]:
            values = [getattr(p, name) for p in parts]
            return None if values[0] is None else torch.cat([v.cpu() for v in values])

        anchors = None if parts[0].anchors is None else [a for p in parts for a in p.anchors]
        return Samples([q for p in parts for q in p.prompts], None, None, 0, None, None,
                       [t for p in parts for t in p.texts], None, None, cat("reward"), cat("win_prob"), anchors,
                       cat("gold"), sum(p.rows_judged for p in parts), cat("probability"))


@dataclass
class Rollout(Samples):
    optimised: torch.Tensor = None           # the reward after ppo.reward_transform: what the advantages are made of
    values: Optional[torch.Tensor] = None    # critic values (gae only)
    advantages: torch.Tensor = None
    returns: Optional[torch.Tensor] = None   # value targets (gae only)
    kl: torch.Tensor = None


class PPOModule(L.LightningModule):
    def __init__(self, policy: PreTrainedModel, reference: PreTrainedModel, critic: Optional[PreTrainedModel],
                 reward_model: RewardModel, tokenizer: PreTrainedTokenizerBase, task: Task, prompts: Sequence[Prompt],
                 val_prompts: Sequence[Prompt], cfg: DictConfig, seed: int, samples_dir: Optional[Path] = None,
                 sampler: Optional[SamplingCopy] = None):
        super().__init__()
        self.automatic_optimization = False
        self.policy, self.reference, self.critic = policy, reference, critic
        self.reward_model = reward_model
        # A submodule, so Lightning places it with the others (the gold judge has no network).
        self.reward_net = reward_model.model if reward_model.model is not None else torch.nn.Identity()
        for frozen in (self.reference, self.reward_net):
            frozen.requires_grad_(False)
        self.tokenizer, self.task, self.cfg, self.seed = tokenizer, task, cfg, seed
        self.prompts, self.val_prompts = list(prompts), list(val_prompts)
        self.samples_dir = samples_dir
        # bf16-mixed: rollouts sample from a bf16 copy of the policy (models/sampling.py), refreshed whenever
        # policy_version moves (every policy step, and a resume); None samples from the policy itself.
        self.sampler, self.policy_version = sampler, 0
        self.rollout_logprobs = rollout_logprobs_for(cfg.ppo.rollout_logprobs, computes_below_fp32(cfg))

        ppo = cfg.ppo
        self.reward_form = PPO_REWARDS.get(ppo.reward)
        self.estimator = ADVANTAGE_ESTIMATORS.get(ppo.advantage)
        if self.estimator.needs_critic != (critic is not None):
            raise ValueError(f"ppo.advantage={ppo.advantage} {'needs' if self.estimator.needs_critic else 'takes no'} "
                             "critic")
        self.group_size = ppo.samples_per_prompt
        self.anchor_name = self.reward_form.anchor_override(reward_model) or ppo.anchor
        self.anchor = build_anchor(self.anchor_name) if self.reward_form.needs_anchor(reward_model) else None
        self.kl_ctl = (AdaptiveKLController(ppo.kl.coef, ppo.kl.target, kl_horizon(ppo)) if ppo.kl.adaptive
                       else FixedKLController(ppo.kl.coef))
        self.iteration = 0
        self.resume_step = 0
        self.guard = NonFiniteGuard(cfg.trainer.on_nonfinite, "ppo")
        self.local_param_fraction = 1.0
        self.phase_seconds: Dict[str, float] = {}  # where training's time goes (logged as train/seconds/<phase>)
        self.rows_judged = 0  # RM rows read by training rollouts, summed over ranks: the judge's cost
        self.reward_std_sum, self.reward_std_count = 0.0, 0  # per-iteration global reward std, summed
        self.last_metrics: Dict[str, float] = {}

    # ------------------------------------------------------------------------------------------ plumbing
    def train(self, mode: bool = True) -> "PPOModule":
        super().train(mode)
        self.reference.eval()  # frozen models never leave eval mode (Lightning calls train() after validation)
        self.reward_net.eval()
        return self

    def on_fit_start(self) -> None:
        self.train()  # from_pretrained returns eval mode; the trainable models must not inherit it

    @property
    def completed_steps(self) -> int:
        return self.iteration

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["ppo_state"] = {"iteration": self.iteration, "kl_ctl": self.kl_ctl.state_dict(),
                                   "anchor": self.anchor.state_dict() if self.anchor else None,
                                   "nonfinite_guard": self.guard.state_dict(), "phase_seconds": dict(self.phase_seconds),
                                   "rows_judged": self.rows_judged,
                                   "reward_std": [self.reward_std_sum, self.reward_std_count]}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.policy_version += 1  # the policy's weights are the checkpoint's now: a sampling copy is stale
        state = checkpoint["ppo_state"]
        self.iteration = self.resume_step = state["iteration"]
        self.kl_ctl.load_state_dict(state["kl_ctl"])
        if self.anchor is not None:
            self.anchor.load_state_dict(state["anchor"])
        self.guard.load_state_dict(state.get("nonfinite_guard", {}))
        self.phase_seconds = dict(state.get("phase_seconds", {}))  # cumulative across a resume
        self.rows_judged = state.get("rows_judged", 0)
        self.reward_std_sum, self.reward_std_count = state.get("reward_std", [0.0, 0])

    def train_dataloader(self) -> torch.utils.data.DataLoader:
        return step_loader(len(self.prompts), self.cfg.ppo.rollout_batch_size, self.cfg.ppo.iterations, self.seed,
                           lambda indices, step: [self.prompts[i] for i in indices], "ppo", self.resume_step)

    def val_dataloader(self) -> torch.utils.data.DataLoader:
        return torch.utils.data.DataLoader([self.val_prompts], batch_size=None, collate_fn=lambda x: x)

    def transfer_batch_to_device(self, batch, device, dataloader_idx: int):
        return batch  # Prompt records; tensors are made on the right device when tokenized

    def configure_model(self) -> None:
        """trainer=ddp | fsdp: shard every network; the frozen ones may live on CPU between uses."""
        trainer, device = self.cfg.trainer, compute_device(self.cfg.trainer)
        for model in (self.policy, self.critic):
            if model is not None:
                parallelize(model, trainer, device)
        for model in (self.reference, self.reward_net):
            parallelize(model, trainer, device, frozen=True)
        self.local_param_fraction = local_fraction(self.policy)

    def configure_optimizers(self):
        policy = adamw(self.policy.parameters(), self.cfg.ppo.policy_lr, 0.0)
        if self.critic is None:
            return policy
        return [policy, adamw(self.critic.parameters(), self.cfg.ppo.critic_lr, 0.0)]

    @contextmanager
    def _timed(self, phase: str) -> Iterator[None]:
        """Accumulate wall time per phase of an iteration (only while fitting: evaluation is not training)."""
        started = time.perf_counter()
        try:
            yield
        finally:
            if self._trainer is not None and self.trainer.training:
                self.phase_seconds[phase] = self.phase_seconds.get(phase, 0.0) + time.perf_counter() - started

    # ------------------------------------------------------------------------------------------ rollout
    def sampling_policy(self) -> PreTrainedModel:
        """The weights rollouts sample from: the policy, or its low-precision copy brought up to date."""
        return self.policy if self.sampler is None else self.sampler.model(self.policy, self.policy_version)

    def _anchor_context(self, seed: int) -> AnchorContext:
        g = self.cfg.generation
        return AnchorContext(self.sampling_policy(), self.reference, self.tokenizer, self.reward_model,
                             g.max_new_tokens, self.cfg.data.max_prompt_tokens, g.temperature,
                             self.cfg.ppo.best_of_n, seed, self.cfg.ppo.best_of_n_by)

    def _logprobs(self, model: PreTrainedModel, sequences, attention_mask, prompt_len, response_ids):
        hidden = _response_hidden(model, sequences, attention_mask, prompt_len)
        return token_logprobs(lm_head_logits(model, hidden), response_ids)

    @torch.no_grad()
    def sample(self, prompts: List[Prompt], seed: int, greedy: bool = False, group_size: int = 1) -> Samples:
        """Responses to `prompts` (rows in contiguous groups of `group_size` samples of one prompt), judged."""
        g = self.cfg.generation
        texts = [p.prompt for p in prompts]
        with self._timed("generate"):
            out = generate(self.sampling_policy(), self.tokenizer, texts, max_new_tokens=g.max_new_tokens,
                           max_prompt_tokens=self.cfg.data.max_prompt_tokens, greedy=greedy,
                           temperature=g.temperature, top_k=g.top_k, top_p=g.top_p, generator_seed=seed,
                           return_logprobs=self.rollout_logprobs == "generation")
        sequences = torch.cat([out.prompt_ids, out.response_ids], 1)
        attention_mask = torch.cat([out.prompt_mask, out.response_mask], 1)
        prompt_len = out.prompt_ids.shape[1]
        if out.logprobs is not None:
            # The sampling pass already computed these logits (KV cache): equal to a fresh forward up to float
            # rounding in fp32, which is why TRL reads them too. From a bf16 sampling copy they are another
            # model's (rollout_logprobs_for: auto takes forward there).
            logprobs = out.logprobs
        else:
            with self._timed("policy_logprobs"):
                logprobs = self._logprobs(self.policy, sequences, attention_mask, prompt_len, out.response_ids)
        with self._timed("reference"):
            ref_logprobs = self._logprobs(self.reference, sequences, attention_mask, prompt_len, out.response_ids)
        judged_before = self.reward_model.rows_judged
        with self._timed("reward"):
            anchors = None
            if self.anchor:  # one anchor per prompt, shared by its group
                unique = self.anchor.anchors(prompts[::group_size], self._anchor_context(seed + 1))
                anchors = [a for a in unique for _ in range(group_size)]
            judged = None
            if group_size >= self.reward_form.min_group_size:
                judged = self.reward_form.reward(self.reward_model, RewardRequest.from_config(
                    self.cfg.ppo, texts, out.texts, anchors, group_size, seed))
        gold = None
        if self.task.gold is not None:
            gold = torch.tensor([self.task.gold.score(p, r) for p, r in zip(texts, out.texts)])
        return Samples(prompts, sequences, attention_mask, prompt_len, out.response_ids, out.response_mask.float(),
                       out.texts, logprobs, ref_logprobs,
                       None if judged is None else judged.reward.to(logprobs.device),
                       None if judged is None or judged.win_prob is None else judged.win_prob.to(logprobs.device),
                       anchors, gold, self.reward_model.rows_judged - judged_before,
                       None if judged is None or judged.probability is None else judged.probability.to(logprobs.device))

    @torch.no_grad()
    def make_rollout(self, prompts: List[Prompt], step: int) -> Rollout:
        ppo = self.cfg.ppo
        # Each rank samples its slice of the batch with its own stream (rank 0's is the single-process one);
        # one shared seed would give every rank the same sampling noise.
        rank = distributed.rank()
        samples = self.sample(repeat_for_sampling(prompts, self.group_size),
                              step_seed(self.seed, step, f"rollout/rank{rank}" if rank else "rollout"),
                              group_size=self.group_size)
        values = None
        if self.critic is not None:
            with self._timed("critic"):
                values = scalar_head(self.critic, _response_hidden(self.critic, samples.sequences,
                                                                   samples.attention_mask, samples.prompt_len)).float()
        kl = kl_penalty(samples.logprobs, samples.ref_logprobs, ppo.kl.estimator)
        # Batch statistics (whitening) over the global batch: every rank holds a slice of the rollout. Group
        # statistics need no communication: a rank always holds whole groups.
        sum_over_ranks = distributed.all_sum if distributed.is_distributed() else None
        optimised = transform_reward(ppo.reward_transform, samples.reward, samples.probability, sum_over_ranks)
        advantages, returns = self.estimator.compute(AdvantageInputs(
            scores=optimised, kl=kl, mask=samples.mask, kl_coef=self.kl_ctl.value if ppo.kl.in_reward else 0.0,
            group_size=self.group_size, values=values, gamma=ppo.gamma, lam=ppo.lam, whiten=ppo.whiten_advantages,
            scale_by_std=ppo.scale_by_group_std,
            sum_over_ranks=sum_over_ranks))
        return Rollout(**samples.__dict__, optimised=optimised, values=values, advantages=advantages, returns=returns,
                       kl=kl)

    # ------------------------------------------------------------------------------------------ update
    def _minibatches(self, rows: int, generator: torch.Generator) -> List[torch.Tensor]:
        """Row indices of each minibatch: whole groups in a random order, ppo.minibatch_size groups (prompts) each.

        Sizes are global, like the rollout's; with one sample per prompt this is the row permutation PPO always used.
        """
        n = self.group_size
        local_groups = self.cfg.ppo.minibatch_size // distributed.world_size()
        order = torch.randperm(rows // n, generator=generator)
        return [(group.unsqueeze(-1) * n + torch.arange(n)).reshape(-1) for group in order.split(local_groups)]

    def ppo_update(self, rollout: Rollout, step: int) -> Dict[str, float]:
        ppo = self.cfg.ppo
        optimizers = self.optimizers()
        policy_opt, critic_opt = (optimizers, None) if self.critic is None else optimizers
        generator = torch.Generator().manual_seed(step_seed(self.seed, step, "minibatch"))
        totals: Dict[str, float] = {}
        first: Dict[str, float] = {}  # the first minibatch's ratio, computed before this iteration changed anything
        updates = 0
        for _ in range(ppo.ppo_epochs):
            for index in self._minibatches(len(rollout.texts), generator):
                index = index.to(rollout.sequences.device)
                seq, attn, mask = rollout.sequences[index], rollout.attention_mask[index], rollout.mask[index]
                hidden = _response_hidden(self.policy, seq, attn, rollout.prompt_len)
                logits = lm_head_logits(self.policy, hidden)
                logprobs = token_logprobs(logits, rollout.response_ids[index])
                pg_loss, stats = policy_loss(logprobs, rollout.logprobs[index], rollout.advantages[index], mask,
                                             ppo.clip_ratio, ppo.dual_clip)
                entropy = masked_mean(entropy_from_logits(logits), mask)
                loss = pg_loss - ppo.entropy_coef * entropy
                if not ppo.kl.in_reward:
                    kl_term = masked_mean(kl_penalty(logprobs, rollout.ref_logprobs[index], ppo.kl.estimator), mask)
                    loss = loss + self.kl_ctl.value * kl_term
                    stats["kl_loss"] = kl_term.detach()
                losses = {"policy_loss": loss}
                if critic_opt is not None:
                    values = scalar_head(self.critic, _response_hidden(self.critic, seq, attn,
                                                                       rollout.prompt_len)).float()
                    vf_loss, vstats = value_loss(values, rollout.values[index], rollout.returns[index], mask,
                                                 ppo.value_clip)
                    losses["value_loss"] = vf_loss
                    stats.update(vstats, value_loss=vf_loss)
                if not self.guard.ok(step, **losses):
                    continue  # on_nonfinite=skip: this minibatch changes no network
                policy_opt.zero_grad()
                self.manual_backward(loss)
                self.clip_gradients(policy_opt, gradient_clip_val=ppo.max_grad_norm, gradient_clip_algorithm="norm")
                policy_opt.step()
                self.policy_version += 1

                if critic_opt is not None:
                    critic_opt.zero_grad()
                    self.manual_backward(ppo.vf_coef * losses["value_loss"])
                    self.clip_gradients(critic_opt, gradient_clip_val=ppo.max_grad_norm,
                                        gradient_clip_algorithm="norm")
                    critic_opt.step()

                for name, value in {"policy_loss": pg_loss, "entropy": entropy, **stats}.items():
                    totals[name] = totals.get(name, 0.0) + float(value.detach())
                if not first:
                    first = {f"first_{k}": float(stats[k]) for k in ("ratio_abs_dev", "ratio_max_dev")}
                updates += 1
        return {**{name: value / max(updates, 1) for name, value in totals.items()}, **first}

    def training_step(self, prompts: List[Prompt], batch_idx: int) -> None:
        step = self.iteration
        rollout = self.make_rollout(prompts, step)
        checked = {"reward": rollout.reward, "optimised_reward": rollout.optimised, "kl": rollout.kl,
                   "advantages": rollout.advantages}
        if rollout.values is not None:
            checked["values"] = rollout.values
        if not self.guard.ok(step, **checked):
            self.iteration += 1  # on_nonfinite=skip: no update from this rollout, and the KL controller ignores it
            self.log("train/nonfinite_skipped", float(self.guard.skipped), batch_size=len(prompts))
            return
        with self._timed("update"):
            update = self.ppo_update(rollout, step)
        kl_per_sequence = masked_sum(rollout.logprobs - rollout.ref_logprobs, rollout.mask, dim=-1)
        metrics = {
            # The reward as the form gives it (before ppo.reward_transform): its spread is the signal's size.
            "reward/mean": rollout.reward.mean(), "reward/std": rollout.reward.std(),
            "reward/optimised_std": rollout.optimised.std(),
            "kl/sequence": kl_per_sequence.mean(), "kl/coef": torch.tensor(self.kl_ctl.value),
            "response/length": rollout.mask.sum(-1).mean(),
            "advantage/abs_mean": masked_mean(rollout.advantages.abs(), rollout.mask),
            "judge/rows": torch.tensor(float(rollout.rows_judged)),  # RM sequences read this iteration (this rank)
            **{f"ppo/{k}": torch.tensor(v) for k, v in update.items()},
            **self._anchor_metrics(rollout),
        }
        if rollout.values is not None:
            metrics.update({"value/explained_variance": explained_variance(rollout.values, rollout.returns,
                                                                           rollout.mask),
                            "value/mean": masked_mean(rollout.values, rollout.mask),
                            "returns/mean": masked_mean(rollout.returns, rollout.mask)})
        if rollout.gold is not None:
            metrics["gold/mean"] = rollout.gold.mean()
        metrics.update({f"seconds/{phase}": torch.tensor(value) for phase, value in self.phase_seconds.items()})
        self.last_metrics = {k: float(v) for k, v in metrics.items()}  # the iteration's numbers, for benchmarks
        if self.guard.skipped:
            metrics["nonfinite_skipped"] = torch.tensor(float(self.guard.skipped))
        # The controller sees the global batch's KL, so every rank keeps the same coefficient.
        reward = rollout.reward.float()
        kl_total = distributed.all_sum(torch.stack([kl_per_sequence.sum(), torch.tensor(
            float(len(rollout.texts)), device=kl_per_sequence.device), torch.tensor(
            float(rollout.rows_judged), device=kl_per_sequence.device), reward.sum(), (reward ** 2).sum()]).float())
        self.rows_judged += int(kl_total[2])
        # The global batch's reward spread, averaged over the run: how big the signal PPO sees is, per arm.
        n = float(kl_total[1])
        variance = (float(kl_total[4]) - float(kl_total[3]) ** 2 / n) / max(n - 1.0, 1.0)
        self.reward_std_sum += max(variance, 0.0) ** 0.5
        self.reward_std_count += 1
        self.kl_ctl.update(float(kl_total[0] / kl_total[1]), int(kl_total[1]))
        self.iteration += 1
        sync = distributed.is_distributed()  # logged values: the mean over ranks
        self.log_dict({f"train/{k}": float(v) for k, v in metrics.items()}, batch_size=len(prompts),
                      prog_bar=False, sync_dist=sync)
        self.log("gold", float(metrics.get("gold/mean", metrics["reward/mean"])), prog_bar=True,
                 batch_size=len(prompts), sync_dist=sync)

    def run_summary(self) -> Dict[str, float]:
        """How the run went, beside the held-out numbers: the reward's mean spread over iterations (before
        ppo.reward_transform), beta at the end and, for the adaptive controller, the target and horizon it had."""
        out = {"train_reward_std": self.reward_std_sum / max(self.reward_std_count, 1),
               "kl_coef_final": float(self.kl_ctl.value)}
        if isinstance(self.kl_ctl, AdaptiveKLController):
            out.update({"kl_target": float(self.kl_ctl.target), "kl_horizon": float(self.kl_ctl.horizon)})
        return out

    def judge_rows_per_iteration(self) -> float:
        """RM rows read per training iteration (all ranks, anchors included): the judge's share of a setup's cost."""
        return self.rows_judged / max(self.iteration, 1)

    def _anchor_metrics(self, samples: Samples) -> Dict[str, torch.Tensor]:
        out: Dict[str, torch.Tensor] = {}
        if samples.win_prob is not None:
            out["anchor/win_rate"] = (samples.win_prob > 0.5).float().mean()
            out["anchor/win_prob"] = samples.win_prob.mean()
        if samples.anchors is not None and samples.gold is not None:
            anchor_gold = torch.tensor([self.task.gold.score(p.prompt, a)
                                        for p, a in zip(samples.prompts, samples.anchors)])
            out["anchor/gold_win_rate"] = (samples.gold > anchor_gold).float().mean()
            out["anchor/gold"] = anchor_gold.mean()
        return out

    # ------------------------------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def evaluate(self, held_out: List[Prompt], tag: str, greedy: bool = True, samples_per_prompt: int = 1,
                 batch_size: int = 512) -> tuple[Dict[str, float], List[dict]]:
        """Held-out metrics (gold, reward, KL to the reference, anchor win rate) and the sample rows behind them.

        Rows are sampled in the same chunks with the same seeds as eval.policy, so the SFT policy scores the same
        here as in the SFT stage's own evaluation.
        """
        metrics: Dict[str, float] = {}
        rows: List[dict] = []
        for mode in ("sampled", "greedy") if greedy else ("sampled",):
            shown = held_out if mode == "greedy" else repeat_for_sampling(held_out, samples_per_prompt)
            # A group reward judges a prompt's samples against each other; greedy decoding has groups of one, so
            # it has no reward there (chunks hold whole groups: validate() checks eval.batch_size).
            group = samples_per_prompt if mode == "sampled" and self.reward_form.min_group_size > 1 else 1
            chunks = [self.sample(chunk, seed=seed, greedy=mode == "greedy", group_size=group)
                      for seed, chunk in eval_chunks(shown, batch_size)]
            joined = Samples.join(chunks)
            kl = torch.cat([masked_sum(c.logprobs - c.ref_logprobs, c.mask, dim=-1) for c in chunks])
            lengths = torch.cat([c.mask.sum(-1) for c in chunks])
            if joined.reward is not None:
                metrics[f"reward_{mode}"] = float(joined.reward.mean())
            metrics[f"kl_{mode}"] = float(kl.mean())
            metrics[f"response_length_{mode}"] = float(lengths.mean())
            for name, value in self._anchor_metrics(joined).items():
                metrics[f"{name}_{mode}"] = float(value)
            texts = [p.prompt for p in shown]
            if joined.gold is not None:
                for group, value in self.task.by_group(texts, joined.gold.tolist()).items():
                    metrics[f"gold_{mode}/{group}"] = value
            for i, prompt in enumerate(texts):
                rows.append({"task": shown[i].task, "kind": self.task.group_of(prompt), "mode": mode, "model": tag,
                             "prompt": prompt, "response": joined.texts[i], "reference": shown[i].reference,
                             "anchor": joined.anchors[i] if joined.anchors else None,
                             "reward": None if joined.reward is None else float(joined.reward[i]),
                             "kl": float(kl[i]), "length": float(lengths[i]),
                             "gold": float(joined.gold[i]) if joined.gold is not None else None})
        return metrics, rows

    def validation_step(self, prompts: List[Prompt], batch_idx: int) -> None:
        metrics, rows = self.evaluate(prompts, tag=f"iteration-{self.iteration}", greedy=True)
        if self.samples_dir is not None and self.trainer.is_global_zero:
            write_jsonl(self.samples_dir / f"iteration-{self.iteration:05d}.jsonl", rows)
        self.log_dict({f"val/{k}": v for k, v in metrics.items()}, batch_size=len(prompts))
