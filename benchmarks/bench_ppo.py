"""PPO iteration throughput: our PPO stage's loop against TRL's PPOTrainer (trl 1.12.0, its own environment).

Both sides: the default tiny model as policy, reference, BT reward model and critic backbone; rollouts of 64 digits
prompts, responses up to 20 tokens sampled at temperature 1, 2 PPO epochs in minibatches of 32 (one optimiser step
per minibatch), fp32 on the CPU, the same number of iterations. Reported: samples/s over the whole train call and,
for ours, where an iteration's time goes (generate, reference, reward, critic, update). Ours also runs with
ppo.rollout_logprobs=forward (a separate forward pass for the rollout's old logprobs, the code before reading them
from the sampling pass) as the before/after of that change. Target (issue 7): at least 1.5x TRL's throughput.

With --model smollm2 (issue 17): SmolLM2-135M-Instruct as all four models, HH-RLHF prompts as a chat turn cut to
their last 96 tokens on both sides, responses up to 32 tokens, REAL_ITERATIONS iterations of REAL_ROLLOUT prompts,
one epoch, one minibatch (experiments/pairwise_vs_bt_hh.yaml's shape, full fine-tuning). The before/after there is
packing (models/packing.py) off and on.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
from common import arguments, default_model_dir, report_name, write_report
from hydra import compose, initialize_config_dir
from lightning.fabric.utilities.seed import seed_everything
from peers import peer_python, run_peer
from real import HH_FILE, PROMPT_TOKENS, RESPONSE_TOKENS, hh_rows, real_model_dir

from pairwise_rl.cli import CONF_DIR
from pairwise_rl.data.records import Prompt
from pairwise_rl.models import packing
from pairwise_rl.models.chat import use_chat_prompts
from pairwise_rl.models.factory import load_causal_lm, load_scalar_model, load_tokenizer
from pairwise_rl.modules.ppo import PPOModule
from pairwise_rl.rewards.bt import BTReward
from pairwise_rl.tasks.demonstrations import demonstrations
from pairwise_rl.tasks.base import load_task
from pairwise_rl.tasks.digits import sample_problems
from pairwise_rl.training import build_trainer

ITERATIONS, ROLLOUT, MINIBATCH, EPOCHS, RESPONSE = 8, 64, 32, 2, 20  # conf/ppo + generation defaults
RUN_SEEDS = (0, 1, 2)
REAL_ITERATIONS, REAL_ROLLOUT, REAL_MINIBATCH, REAL_EPOCHS, REAL_RESPONSE = 2, 8, 8, 1, RESPONSE_TOKENS
REAL_SEEDS = (0, 1)


class Shape:
    """One benchmark's model, data and PPO sizes (tiny digits, or the real model on HH-RLHF)."""

    def __init__(self, model: str):
        self.real = model != "tiny"
        if self.real:
            self.model_dir, self.seeds = real_model_dir(), REAL_SEEDS
            self.iterations, self.rollout, self.minibatch = REAL_ITERATIONS, REAL_ROLLOUT, REAL_MINIBATCH
            self.epochs, self.response, self.limits, self.data = REAL_EPOCHS, REAL_RESPONSE, (PROMPT_TOKENS,
                                                                                              RESPONSE_TOKENS), "hh"
            self.what = "SmolLM2-135M-Instruct, HH-RLHF prompts (chat turn, last 96 tokens)"
        else:
            self.model_dir, self.seeds = default_model_dir(), RUN_SEEDS
            self.iterations, self.rollout, self.minibatch = ITERATIONS, ROLLOUT, MINIBATCH
            self.epochs, self.response, self.limits, self.data = EPOCHS, RESPONSE, (64, 24), "digits"
            self.what = "default tiny model, digits prompts"

    def overrides(self) -> list:
        if not self.real:
            return []
        return ["data=hh_rlhf", f"data.path={HH_FILE}", f"data.max_prompt_tokens={self.limits[0]}",
                f"data.max_response_tokens={self.limits[1]}"]

    def prompts(self, seed: int) -> list:
        if self.real:
            prompts, chosen, _ = hh_rows(self.rollout * self.iterations, offset=seed * 100)
            return [Prompt(p, c) for p, c in zip(prompts, chosen)]
        problems = sample_problems("train", self.rollout * self.iterations, seed, ["sort", "reverse", "add"], 3, 8,
                                   999)
        return demonstrations(problems, 0.0, seed)


def ours(shape: Shape, seed: int, rollout_logprobs: str = "generation", packed: bool = True) -> dict:
    model_dir, iterations = shape.model_dir, shape.iterations
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=[
            "rm=bt", "ppo=standard", f"ppo.iterations={iterations}", f"ppo.rollout_batch_size={shape.rollout}",
            f"ppo.minibatch_size={shape.minibatch}", f"ppo.ppo_epochs={shape.epochs}",
            f"generation.max_new_tokens={shape.response}", f"ppo.val_every={iterations}",
            f"ppo.checkpoint_every={iterations + 1}", "logger=none", "trainer.progress_bar=none", f"seed={seed}",
            f"ppo.rollout_logprobs={rollout_logprobs}", "paths.root_dir=.", "paths.output_dir=.",
            "paths.cache_dir=.", "trainer.precision=32-true",  # fp32 against TRL's fp32 (bench_precision: bf16)
            *shape.overrides()])
    seed_everything(seed, verbose=False)
    tokenizer = use_chat_prompts(load_tokenizer(model_dir), shape.real)
    critic = load_scalar_model(model_dir)
    torch.nn.init.zeros_(critic.score.weight)
    reward = BTReward.from_pretrained(model_dir, max_prompt_tokens=shape.limits[0], max_response_tokens=shape.limits[1])
    use_chat_prompts(reward.tokenizer, shape.real)
    prompts = shape.prompts(seed)
    module = PPOModule(load_causal_lm(model_dir), load_causal_lm(model_dir), critic, reward, tokenizer,
                       load_task(cfg), prompts, prompts[:1], cfg, seed)  # one validation prompt: ~free
    # No checkpoint inside the timed run: the TRL side runs with save_strategy="no".
    trainer = build_trainer(cfg, Path(tempfile.mkdtemp()), stage="ppo", run_name="bench", val_every=iterations,
                            checkpoint_every=iterations + 1, log_every_n_steps=1)
    with packing.disabled(not packed):
        started = time.perf_counter()
        trainer.fit(module)
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "samples_per_s": shape.rollout * iterations / seconds,
            "phases": {k: v / iterations for k, v in module.phase_seconds.items()}}


def main() -> None:
    args = arguments(__doc__.splitlines()[0])
    shape = Shape(args.model)
    trl_python = peer_python("trl", "1.12.0")
    script = Path(__file__).resolve().parent / "peer_scripts" / "trl_ppo_trainer.py"
    # The before: the forward-logprobs pass on the tiny model (issue 7's change), packing off on the real one.
    before_name, before_label = (("ours_padded", "ours, trainer.packing=false (before)") if shape.real else
                                 ("ours_forward_logprobs", "ours, ppo.rollout_logprobs=forward (before)"))
    runs = {"ours": [], "trl": [], before_name: []}
    for seed in shape.seeds:  # alternate the sides; medians, because this box's speed drifts
        runs["ours"].append(ours(shape, seed))
        runs[before_name].append(ours(shape, seed, packed=False) if shape.real else ours(shape, seed, "forward"))
        runs["trl"].append(json.loads(run_peer(trl_python, script, shape.model_dir, str(shape.iterations),
                                               str(shape.rollout), str(shape.minibatch), str(shape.epochs),
                                               str(shape.response), str(seed), shape.data, str(shape.limits[0]),
                                               str(Path(__file__).resolve().parent))))
    median = {side: statistics.median(r["samples_per_s"] for r in rs) for side, rs in runs.items()}
    ratio = median["ours"] / median["trl"]
    before = median[before_name] / median["trl"]
    phases = {k: statistics.median(r["phases"][k] for r in runs["ours"]) for k in runs["ours"][0]["phases"]}
    result = {"model": args.model, "iterations": shape.iterations, "rollout": shape.rollout,
              "minibatch": shape.minibatch, "epochs": shape.epochs, "response_length": shape.response, "runs": runs,
              "median_samples_per_s": median, "ours_seconds_per_iteration": phases, "throughput_ratio": ratio,
              f"throughput_ratio_{before_name.removeprefix('ours_')}": before, "target_met": ratio >= 1.5}
    split = ", ".join(f"{k} {v * 1e3:.0f} ms" for k, v in phases.items())
    digits = 2 if shape.real else 1
    write_report(args.out, report_name("ppo", args), result,
                 [["ours (PPOModule, Lightning)", f"{median['ours']:.{digits}f}", f"{ratio:.2f}x"],
                  [before_label, f"{median[before_name]:.{digits}f}", f"{before:.2f}x"],
                  ["TRL 1.12 PPOTrainer", f"{median['trl']:.{digits}f}", "1.00x"]],
                 ["PPO", "samples/s", "throughput vs TRL"],
                 f"{shape.iterations} iterations x {shape.rollout} prompts, responses <= {shape.response} tokens, "
                 f"{shape.epochs} epochs x minibatches of {shape.minibatch}, {shape.what}, fp32 CPU; median of "
                 f"{len(shape.seeds)} alternating runs per side. Our iteration, median per phase: {split}. Target: "
                 f">= 1.5x ({'met' if ratio >= 1.5 else 'missed'}).")


if __name__ == "__main__":
    main()
