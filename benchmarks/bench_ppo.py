"""PPO iteration throughput: our PPO stage's loop against TRL's PPOTrainer (trl 1.12.0, its own environment).

Both sides: the default tiny model as policy, reference, BT reward model and critic backbone; rollouts of 64 digits
prompts, responses up to 20 tokens sampled at temperature 1, 2 PPO epochs in minibatches of 32 (one optimiser step
per minibatch), fp32 on the CPU, the same number of iterations. Reported: samples/s over the whole train call and,
for ours, where an iteration's time goes (generate, reference, reward, critic, update). Ours also runs with
ppo.rollout_logprobs=forward (a separate forward pass for the rollout's old logprobs, the code before reading them
from the sampling pass) as the before/after of that change. Target (issue 7): at least 1.5x TRL's throughput.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
from common import arguments, default_model_dir, write_report
from hydra import compose, initialize_config_dir
from lightning.fabric.utilities.seed import seed_everything
from peers import peer_python, run_peer

from pairwise_rl.cli import CONF_DIR
from pairwise_rl.models.factory import load_causal_lm, load_scalar_model, load_tokenizer
from pairwise_rl.modules.ppo import PPOModule
from pairwise_rl.rewards.bt import BTReward
from pairwise_rl.tasks.demonstrations import demonstrations
from pairwise_rl.tasks.digits import sample_problems
from pairwise_rl.training import build_trainer

ITERATIONS, ROLLOUT, MINIBATCH, EPOCHS, RESPONSE = 8, 64, 32, 2, 20  # conf/ppo + generation defaults
RUN_SEEDS = (0, 1, 2)


def ours(model_dir: str, seed: int, rollout_logprobs: str = "generation") -> dict:
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=[
            "rm=bt", "ppo=standard", f"ppo.iterations={ITERATIONS}", f"ppo.rollout_batch_size={ROLLOUT}",
            f"ppo.minibatch_size={MINIBATCH}", f"ppo.ppo_epochs={EPOCHS}", f"generation.max_new_tokens={RESPONSE}",
            f"ppo.val_every={ITERATIONS}", f"ppo.checkpoint_every={ITERATIONS + 1}", "logger=none",
            "trainer.progress_bar=none", f"seed={seed}", f"ppo.rollout_logprobs={rollout_logprobs}",
            "paths.root_dir=.", "paths.output_dir=.", "paths.cache_dir=."])
    seed_everything(seed, verbose=False)
    tokenizer = load_tokenizer(model_dir)
    critic = load_scalar_model(model_dir)
    torch.nn.init.zeros_(critic.score.weight)
    reward = BTReward.from_pretrained(model_dir, max_prompt_tokens=64, max_response_tokens=24)
    problems = sample_problems("train", ROLLOUT * ITERATIONS, seed, ["sort", "reverse", "add"], 3, 8, 999)
    prompts = demonstrations(problems, 0.0, seed)
    module = PPOModule(load_causal_lm(model_dir), load_causal_lm(model_dir), critic, reward, tokenizer, prompts,
                       prompts[:1], cfg, seed)  # one validation prompt: ~free
    # No checkpoint inside the timed run: the TRL side runs with save_strategy="no".
    trainer = build_trainer(cfg, Path(tempfile.mkdtemp()), stage="ppo", run_name="bench", val_every=ITERATIONS,
                            checkpoint_every=ITERATIONS + 1, log_every_n_steps=1)
    started = time.perf_counter()
    trainer.fit(module)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "samples_per_s": ROLLOUT * ITERATIONS / seconds,
            "phases": {k: v / ITERATIONS for k, v in module.phase_seconds.items()}}


def main() -> None:
    args = arguments(__doc__.splitlines()[0])
    model_dir = default_model_dir()
    trl_python = peer_python("trl", "1.12.0")
    script = Path(__file__).resolve().parent / "peer_scripts" / "trl_ppo_trainer.py"
    runs = {"ours": [], "trl": [], "ours_forward_logprobs": []}
    for seed in RUN_SEEDS:  # alternate the sides; medians, because this box's speed drifts
        runs["ours"].append(ours(model_dir, seed))
        runs["ours_forward_logprobs"].append(ours(model_dir, seed, "forward"))
        runs["trl"].append(json.loads(run_peer(trl_python, script, model_dir, str(ITERATIONS), str(ROLLOUT),
                                               str(MINIBATCH), str(EPOCHS), str(RESPONSE), str(seed),
                                               str(Path(__file__).resolve().parent))))
    median = {side: statistics.median(r["samples_per_s"] for r in rs) for side, rs in runs.items()}
    ratio = median["ours"] / median["trl"]
    before = median["ours_forward_logprobs"] / median["trl"]
    phases = {k: statistics.median(r["phases"][k] for r in runs["ours"]) for k in runs["ours"][0]["phases"]}
    result = {"iterations": ITERATIONS, "rollout": ROLLOUT, "minibatch": MINIBATCH, "epochs": EPOCHS,
              "response_length": RESPONSE, "runs": runs, "median_samples_per_s": median,
              "ours_seconds_per_iteration": phases, "throughput_ratio": ratio,
              "throughput_ratio_forward_logprobs": before, "target_met": ratio >= 1.5}
    split = ", ".join(f"{k} {v * 1e3:.0f} ms" for k, v in phases.items())
    write_report(args.out, "ppo", result,
                 [["ours (PPOModule, Lightning)", f"{median['ours']:.1f}", f"{ratio:.2f}x"],
                  ["ours, ppo.rollout_logprobs=forward (before)", f"{median['ours_forward_logprobs']:.1f}",
                   f"{before:.2f}x"],
                  ["TRL 1.12 PPOTrainer", f"{median['trl']:.1f}", "1.00x"]],
                 ["PPO", "samples/s", "throughput vs TRL"],
                 f"{ITERATIONS} iterations x {ROLLOUT} prompts, responses <= {RESPONSE} tokens, {EPOCHS} epochs x "
                 f"minibatches of {MINIBATCH}, default tiny model, fp32 CPU; median of {len(RUN_SEEDS)} alternating "
                 f"runs per side. Our iteration, median per phase: {split}. Target: >= 1.5x "
                 f"({'met' if ratio >= 1.5 else 'missed'}).")


if __name__ == "__main__":
    main()
