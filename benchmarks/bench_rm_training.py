"""BT reward-model training: our RM stage's training loop against TRL's RewardTrainer (trl 1.16, own env).

Same pairs, same starting model (the default tiny policy), same batch size, steps, learning rate, warmup, cosine
schedule, gradient clipping and AdamW; fp32 on the CPU. Reported: training pairs/s (the wall time of each side's
train call: ours is Lightning's fit of RewardModelModule, theirs RewardTrainer.train) and held-out accuracy. Each side runs once per seed in RUN_SEEDS (--repeats is not used).
Target (issue 7): at least 1.0x RewardTrainer's pairs/s at equal or better accuracy.
The pairs: digits prompts with the correct answer as chosen and a one-edit corruption of it as rejected.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

from common import arguments, default_model_dir, write_report
from hydra import compose, initialize_config_dir
from lightning.fabric.utilities.seed import seed_everything
from peers import peer_python, run_peer

from pairwise_rl.cli import CONF_DIR
from pairwise_rl.data.records import Preference
from pairwise_rl.eval.preference import judge_pairs, orient_pairs
from pairwise_rl.modules.reward_model import RewardModelModule
from pairwise_rl.rewards.bt import BTReward
from pairwise_rl.tasks.demonstrations import demonstrations
from pairwise_rl.tasks.digits import sample_problems
from pairwise_rl.training import build_trainer

STEPS, BATCH, LR, WARMUP, SEED = 150, 32, 1e-3, 20, 0  # conf/rm: batch_size 32, lr 1e-3, warmup 20
RUN_SEEDS = (0, 1, 2)  # one run per side per seed: the seed sets the score head's init and the batch order
MAX_LENGTH = 64 + 24 + 1  # data.max_prompt_tokens + data.max_response_tokens + BOS


def digits_pairs(split: str, n: int):
    problems = sample_problems(split, n, SEED, ["sort", "reverse", "add"], 3, 8, 999)
    corrupted = demonstrations(problems, corruption_rate=1.0, seed=SEED)  # every reference gets one edit
    return [Preference(p.prompt, p.target, c.reference, task="digits") for p, c in zip(problems, corrupted)
            if c.reference != p.target]


def ours(model_dir: str, train, test, seed: int) -> dict:
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=[
            "rm=bt", f"rm.max_steps={STEPS}", f"rm.batch_size={BATCH}", f"rm.lr={LR}", f"rm.warmup_steps={WARMUP}",
            f"rm.val_every={STEPS}", f"rm.checkpoint_every={STEPS}", "logger=none", "trainer.progress_bar=none",
            f"seed={seed}", "paths.root_dir=.", "paths.output_dir=.", "paths.cache_dir=."])
    seed_everything(seed, verbose=False)  # the fresh score head draws from the global RNG, as in the rm stage
    judge = BTReward.from_pretrained(model_dir, max_prompt_tokens=64, max_response_tokens=24)
    module = RewardModelModule(judge, train, orient_pairs(test[:1], 1), cfg, seed)  # 1 val pair: ~free
    trainer = build_trainer(cfg, Path(tempfile.mkdtemp()), stage="rm", run_name="bench", val_every=STEPS,
                            checkpoint_every=STEPS, gradient_clip_val=1.0)
    started = time.perf_counter()
    trainer.fit(module)
    seconds = time.perf_counter() - started
    accuracy = judge_pairs(judge, orient_pairs(test, 0), 10).metrics["accuracy"]
    return {"seconds": seconds, "pairs_per_s": STEPS * BATCH / seconds, "accuracy": accuracy}


def main() -> None:
    args = arguments(__doc__.splitlines()[0])
    model_dir = default_model_dir()
    train, test = digits_pairs("train", 8000), digits_pairs("test", 600)
    pairs_dir = Path(tempfile.mkdtemp(prefix="bench-pairs-"))
    for name, rows in (("train", train), ("test", test)):
        (pairs_dir / f"{name}.jsonl").write_text("".join(json.dumps(p.to_dict()) + "\n" for p in rows))
    trl_python = peer_python("trl", "1.16.0")
    script = Path(__file__).resolve().parent / "peer_scripts" / "trl_reward_trainer.py"
    # Alternate the two sides, one run each per seed: throughput is the median (this box's speed drifts),
    # accuracy the mean over seeds (one seed's head init moves it by several points).
    runs = {"ours": [], "trl": []}
    for seed in RUN_SEEDS:
        runs["ours"].append(ours(model_dir, train, test, seed))
        runs["trl"].append(json.loads(run_peer(trl_python, script, model_dir, str(pairs_dir), str(STEPS),
                                               str(BATCH), str(LR), str(WARMUP), str(MAX_LENGTH), str(seed))))
    median = {side: {"pairs_per_s": statistics.median(r["pairs_per_s"] for r in rs),
                     "accuracy": statistics.mean(r["accuracy"] for r in rs)} for side, rs in runs.items()}
    ratio = median["ours"]["pairs_per_s"] / median["trl"]["pairs_per_s"]
    met = ratio >= 1.0 and median["ours"]["accuracy"] >= median["trl"]["accuracy"]
    result = {"steps": STEPS, "batch_size": BATCH, "train_pairs": len(train), "test_pairs": len(test),
              "runs": runs, "median": median, "throughput_ratio": ratio, "target_met": met}
    write_report(args.out, "rm_training", result,
                 [["ours (RewardModelModule, Lightning)", f"{median['ours']['pairs_per_s']:.0f}",
                   f"{median['ours']['accuracy']:.3f}", f"{ratio:.2f}x"],
                  ["TRL 1.16 RewardTrainer", f"{median['trl']['pairs_per_s']:.0f}", f"{median['trl']['accuracy']:.3f}",
                   "1.00x"]],
                 ["BT RM training", "pairs/s", "held-out accuracy", "throughput vs TRL"],
                 f"{STEPS} steps x {BATCH} pairs, default tiny model, fp32 CPU, {len(test)} held-out pairs; seeds "
                 f"{list(RUN_SEEDS)}, alternating sides: median pairs/s, mean accuracy over seeds (per run: "
                 + ", ".join(f"{side} {r['pairs_per_s']:.0f}/{r['accuracy']:.3f}" for side in runs
                             for r in runs[side]) + "). Target: >= 1.0x at equal or better accuracy "
                 f"({'met' if met else 'missed'}).")


if __name__ == "__main__":
    main()
