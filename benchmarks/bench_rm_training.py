"""BT reward-model training: our RM stage's training loop against TRL's RewardTrainer (trl 1.16, own env).

Same pairs, same starting model (the default tiny policy), same batch size, steps, learning rate, warmup, cosine
schedule, gradient clipping and AdamW; fp32 on the CPU. Reported: training pairs/s (the wall time of each side's
train call: ours is Lightning's fit of RewardModelModule, theirs RewardTrainer.train) and held-out accuracy. Each side runs once per seed in RUN_SEEDS (--repeats is not used).
Target (issue 7): at least 1.0x RewardTrainer's pairs/s at equal or better accuracy.
The pairs: digits prompts with the correct answer as chosen and a one-edit corruption of it as rejected.

With --model smollm2 (issue 17's target: >= 1.2x at equal held-out accuracy): SmolLM2-135M-Instruct, full
fine-tuning on HH-RLHF pairs (benchmarks/real.py), prompts as a chat turn on both sides, each text cut to the
experiment's token limits before either side reads it, REAL_STEPS steps of REAL_BATCH pairs (what this CPU affords:
a step reads about 2,000 tokens), held-out accuracy on REAL_TEST pairs. Our side runs packed (models/packing.py: a
pair's prompt is computed once for both responses); TRL pads every prompt + response sequence.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

from common import arguments, default_model_dir, report_name, write_report
from hydra import compose, initialize_config_dir
from lightning.fabric.utilities.seed import seed_everything
from peers import peer_python, run_peer
from real import PROMPT_TOKENS, RESPONSE_TOKENS, hh_rows, real_model_dir

from pairwise_rl.cli import CONF_DIR
from pairwise_rl.data.encoding import truncate_texts
from pairwise_rl.data.records import Preference
from pairwise_rl.eval.preference import judge_pairs, orient_pairs
from pairwise_rl.models.chat import use_chat_prompts
from pairwise_rl.models.factory import load_tokenizer
from pairwise_rl.modules.reward_model import RewardModelModule
from pairwise_rl.rewards.bt import BTReward
from pairwise_rl.tasks.demonstrations import demonstrations
from pairwise_rl.tasks.digits import sample_problems
from pairwise_rl.training import build_trainer

STEPS, BATCH, LR, WARMUP, SEED = 150, 32, 1e-3, 20, 0  # conf/rm: batch_size 32, lr 1e-3, warmup 20
RUN_SEEDS = (0, 1, 2)  # one run per side per seed: the seed sets the score head's init and the batch order
MAX_LENGTH = 64 + 24 + 1  # data.max_prompt_tokens + data.max_response_tokens + BOS
REAL_STEPS, REAL_BATCH, REAL_LR, REAL_WARMUP, REAL_TEST = 12, 4, 1e-5, 2, 64
REAL_SEEDS = (0, 1)
# Chat-formatted prompt (<= 96 tokens plus about 10 of template) + response (<= 31 + eos): nothing is cut on TRL's side.
REAL_MAX_LENGTH = PROMPT_TOKENS + RESPONSE_TOKENS + 32


class Setting:
    """What one benchmark run trains: model, pairs, limits and optimiser settings (tiny or real)."""

    def __init__(self, model: str):
        self.real = model != "tiny"
        if not self.real:
            self.model_dir, self.limits, self.chat = default_model_dir(), (64, 24), False
            self.train, self.test = digits_pairs("train", 8000), digits_pairs("test", 600)
            self.steps, self.batch, self.lr, self.warmup, self.max_length = STEPS, BATCH, LR, WARMUP, MAX_LENGTH
            self.seeds, self.what = RUN_SEEDS, "default tiny model"
            return
        self.model_dir, self.limits, self.chat = real_model_dir(), (PROMPT_TOKENS, RESPONSE_TOKENS), True
        self.steps, self.batch, self.lr, self.warmup = REAL_STEPS, REAL_BATCH, REAL_LR, REAL_WARMUP
        self.max_length, self.seeds, self.what = REAL_MAX_LENGTH, REAL_SEEDS, "SmolLM2-135M-Instruct, HH-RLHF pairs"
        tokenizer = load_tokenizer(self.model_dir)
        self.train = self._cut(tokenizer, *hh_rows(REAL_STEPS * REAL_BATCH))
        self.test = self._cut(tokenizer, *hh_rows(REAL_TEST, offset=1000))

    def _cut(self, tokenizer, prompts, chosen, rejected):
        """Texts cut to the token limits (prompts keep their end, responses their start; room for eos), so both
        sides read the same words whatever their own truncation rules."""
        prompts = truncate_texts(tokenizer, prompts, self.limits[0], "end")
        chosen = truncate_texts(tokenizer, chosen, self.limits[1] - 1, "start")
        rejected = truncate_texts(tokenizer, rejected, self.limits[1] - 1, "start")
        return [Preference(p, c, r) for p, c, r in zip(prompts, chosen, rejected) if c != r]


def digits_pairs(split: str, n: int):
    problems = sample_problems(split, n, SEED, ["sort", "reverse", "add"], 3, 8, 999)
    corrupted = demonstrations(problems, corruption_rate=1.0, seed=SEED)  # every reference gets one edit
    return [Preference(p.prompt, p.target, c.reference, task="digits") for p, c in zip(problems, corrupted)
            if c.reference != p.target]


def ours(setting: Setting, seed: int) -> dict:
    steps = setting.steps
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=[
            "rm=bt", f"rm.max_steps={steps}", f"rm.batch_size={setting.batch}", f"rm.lr={setting.lr}",
            f"rm.warmup_steps={setting.warmup}", f"rm.val_every={steps}", f"rm.checkpoint_every={steps}",
            "logger=none", "trainer.progress_bar=none", f"seed={seed}", "paths.root_dir=.", "paths.output_dir=.",
            "paths.cache_dir=.", "trainer.precision=32-true"])  # fp32 against TRL's fp32 (bench_precision: bf16)
    seed_everything(seed, verbose=False)  # the fresh score head draws from the global RNG, as in the rm stage
    judge = BTReward.from_pretrained(setting.model_dir, max_prompt_tokens=setting.limits[0],
                                     max_response_tokens=setting.limits[1])
    use_chat_prompts(judge.tokenizer, setting.chat)
    train, test = setting.train, setting.test
    module = RewardModelModule(judge, train, orient_pairs(test[:1], 1), cfg, seed)  # 1 val pair: ~free
    trainer = build_trainer(cfg, Path(tempfile.mkdtemp()), stage="rm", run_name="bench", val_every=steps,
                            checkpoint_every=steps, gradient_clip_val=1.0)
    started = time.perf_counter()
    trainer.fit(module)
    seconds = time.perf_counter() - started
    accuracy = judge_pairs(judge, orient_pairs(test, 0), 10).metrics["accuracy"]
    return {"seconds": seconds, "pairs_per_s": steps * setting.batch / seconds, "accuracy": accuracy}


def main() -> None:
    args = arguments(__doc__.splitlines()[0])
    setting = Setting(args.model)
    train, test = setting.train, setting.test
    pairs_dir = Path(tempfile.mkdtemp(prefix="bench-pairs-"))
    for name, rows in (("train", train), ("test", test)):
        (pairs_dir / f"{name}.jsonl").write_text("".join(json.dumps(p.to_dict()) + "\n" for p in rows))
    trl_python = peer_python("trl", "1.16.0")
    script = Path(__file__).resolve().parent / "peer_scripts" / "trl_reward_trainer.py"
    # Alternate the two sides, one run each per seed: throughput is the median (this box's speed drifts),
    # accuracy the mean over seeds (one seed's head init moves it by several points).
    runs = {"ours": [], "trl": []}
    for seed in setting.seeds:
        runs["ours"].append(ours(setting, seed))
        runs["trl"].append(json.loads(run_peer(trl_python, script, setting.model_dir, str(pairs_dir),
                                               str(setting.steps), str(setting.batch), str(setting.lr),
                                               str(setting.warmup), str(setting.max_length), str(seed),
                                               "chat" if setting.chat else "plain")))
    median = {side: {"pairs_per_s": statistics.median(r["pairs_per_s"] for r in rs),
                     "accuracy": statistics.mean(r["accuracy"] for r in rs)} for side, rs in runs.items()}
    ratio = median["ours"]["pairs_per_s"] / median["trl"]["pairs_per_s"]
    target = 1.2 if setting.real else 1.0
    # "Equal accuracy" on a few dozen held-out pairs: within one standard error of a proportion near 0.5.
    tolerance = 0.5 / len(test) ** 0.5 if setting.real else 0.0
    met = ratio >= target and median["ours"]["accuracy"] >= median["trl"]["accuracy"] - tolerance
    result = {"model": args.model, "steps": setting.steps, "batch_size": setting.batch, "target_ratio": target,
              "accuracy_tolerance": tolerance, "train_pairs": len(train), "test_pairs": len(test),
              "runs": runs, "median": median, "throughput_ratio": ratio, "target_met": met}
    write_report(args.out, report_name("rm_training", args), result,
                 [["ours (RewardModelModule, Lightning)", f"{median['ours']['pairs_per_s']:.2f}",
                   f"{median['ours']['accuracy']:.3f}", f"{ratio:.2f}x"],
                  ["TRL 1.16 RewardTrainer", f"{median['trl']['pairs_per_s']:.2f}", f"{median['trl']['accuracy']:.3f}",
                   "1.00x"]],
                 ["BT RM training", "pairs/s", "held-out accuracy", "throughput vs TRL"],
                 f"{setting.steps} steps x {setting.batch} pairs, {setting.what}, fp32 CPU, {len(test)} held-out "
                 f"pairs; seeds {list(setting.seeds)}, alternating sides: median pairs/s, mean accuracy over seeds "
                 "(per run: " + ", ".join(f"{side} {r['pairs_per_s']:.2f}/{r['accuracy']:.3f}" for side in runs
                                          for r in runs[side]) + f"). Target: >= {target:g}x at equal accuracy"
                 + (f" (within {tolerance:.3f})" if tolerance else " or better") + f" ({'met' if met else 'missed'}).")


if __name__ == "__main__":
    main()
