"""In-group judging: what each comparison topology costs, and how much of the round robin's ranking it keeps.

On the trained digits models that `pairwise-rl stage=rm rm=generative` builds (the default SFT policy and
generative judge; served from the artifact cache when present): n samples of the SFT policy for each of P held-out
prompts, rated by every topology x fit (rewards/group_matches.py) with two judges: the trained generative judge
(both orders, as PPO uses it) and the gold annotator (the task's exact P(y1 preferred), no judge error), so the
information a topology drops is seen apart from the judge's own errors. Reported per judge, n, topology and fit:
judge rows per group, seconds per group, and the within-group Spearman correlation of the rating with the round
robin's (all_pairs, mean_win: today's reward) and with the gold score (groups whose samples all have equal gold are
left out of that mean). This is the measurement behind ppo.group.fit's choice; the PPO experiment is
experiments/group_topologies.yaml.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Dict, List

import torch
from common import arguments, write_report
from hydra import compose, initialize_config_dir

from pairwise_rl.cli import CONF_DIR
from pairwise_rl.models.factory import load_causal_lm, load_tokenizer
from pairwise_rl.models.generation import generate
from pairwise_rl.pipeline import ensure
from pairwise_rl.rewards.base import load_reward_model
from pairwise_rl.rewards.gold import GoldReward
from pairwise_rl.rewards.group_matches import GROUP_FITS, GROUP_TOPOLOGIES, GroupScheme, play_group
from pairwise_rl.stages.common import HF_DIR
from pairwise_rl.tasks.base import load_task

ROOT = Path(__file__).resolve().parent.parent
K = {4: 1, 8: 3}  # k_random's k per group size, as in experiments/group_topologies.yaml


def ranks(values: torch.Tensor) -> torch.Tensor:
    """Average ranks along the last dimension (ties share their mean rank), for Spearman's rho."""
    order = values.argsort(-1)
    rank = torch.empty_like(values)
    rank.scatter_(-1, order, torch.arange(values.shape[-1], dtype=values.dtype).expand_as(values).contiguous())
    ties = (values.unsqueeze(-1) == values.unsqueeze(-2)).to(values.dtype)      # (..., n, n)
    return (ties @ rank.unsqueeze(-1)).squeeze(-1) / ties.sum(-1)


def spearman(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(G,) within-group rank correlation; NaN where either side is constant."""
    ra, rb = ranks(a.double()), ranks(b.double())
    ra, rb = ra - ra.mean(-1, keepdim=True), rb - rb.mean(-1, keepdim=True)
    denominator = (ra.pow(2).sum(-1) * rb.pow(2).sum(-1)).sqrt()
    return torch.where(denominator > 0, (ra * rb).sum(-1) / denominator.clamp_min(1e-12), torch.nan)


def nanmean(x: torch.Tensor) -> float:
    return float(x[~x.isnan()].mean()) if (~x.isnan()).any() else float("nan")


def main() -> None:
    args = arguments(__doc__.splitlines()[0])
    prompts_per_n = args.n or 128
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=[
            "stage=rm", "rm=generative", "logger=none", "trainer.progress_bar=none", f"paths.root_dir={ROOT}",
            f"paths.output_dir={tempfile.mkdtemp(prefix='bench-group-')}"])  # the repo's artifacts/ cache
    sft_dir, rm_dir = ensure(cfg, "sft"), ensure(cfg, "rm")  # built here once, else served from the cache
    task = load_task(cfg)
    policy, tokenizer = load_causal_lm(str(sft_dir / HF_DIR)), load_tokenizer(str(sft_dir / HF_DIR))
    policy.eval()
    judges = {"generative": load_reward_model(rm_dir / HF_DIR), "gold annotator": GoldReward(dict(cfg.data.digits.tau))}
    judges["generative"].both_orders = True
    prompts = [p.prompt for p in task.eval_prompts()[:prompts_per_n]]

    rows: List[Dict[str, object]] = []
    for n in (4, 8):
        texts = [p for p in prompts for _ in range(n)]
        responses = generate(policy, tokenizer, texts, max_new_tokens=cfg.generation.max_new_tokens,
                             max_prompt_tokens=cfg.data.max_prompt_tokens, generator_seed=n).texts
        gold = torch.tensor([task.gold.score(p, r) for p, r in zip(texts, responses)]).view(-1, n)
        for judge_name, judge in judges.items():
            reference = play_group(judge, texts, responses, n, GroupScheme(), seed=0)[0].view(-1, n)
            for topology in GROUP_TOPOLOGIES.names():
                for fit in GROUP_FITS.names():
                    scheme = GroupScheme(topology, k=K[n], fit=fit)
                    before, started = judge.rows_judged, time.perf_counter()
                    rating = play_group(judge, texts, responses, n, scheme, seed=0)[0].view(-1, n)
                    seconds = time.perf_counter() - started
                    rows.append({"judge": judge_name, "n": n, "topology": topology, "k": K[n] if topology ==
                                 "k_random" else None, "fit": fit,
                                 "matches_per_group": GROUP_TOPOLOGIES.get(topology).matches_per_group(n, K[n]),
                                 "rows_per_group": (judge.rows_judged - before) / len(prompts),
                                 "seconds_per_group": seconds / len(prompts),
                                 "rho_round_robin": nanmean(spearman(rating, reference)),
                                 "rho_gold": nanmean(spearman(rating, gold))})
                    print(rows[-1], flush=True)
    table = [[r["judge"], str(r["n"]), r["topology"] + (f" (k={r['k']})" if r["k"] else ""), r["fit"],
              str(r["matches_per_group"]), f"{r['rows_per_group']:.0f}", f"{1000 * r['seconds_per_group']:.1f}",
              f"{r['rho_round_robin']:.3f}", f"{r['rho_gold']:.3f}"] for r in rows]
    write_report(args.out, "group_topologies", {"prompts": len(prompts), "sft": Path(sft_dir).name,
                                                "rm": Path(rm_dir).name, "rows": rows}, table,
                 ["judge", "n", "topology", "fit", "matches / group", "judge rows / group", "ms / group",
                  "Spearman vs round robin", "Spearman vs gold"],
                 f"{len(prompts)} held-out digits prompts, n SFT samples each (temperature 1), default tiny models "
                 f"({Path(sft_dir).name}, {Path(rm_dir).name}); the gold annotator is the task's exact P(y1 "
                 "preferred). Round robin = all_pairs with mean_win. Gold BT rows: the annotator compares pairs "
                 "directly (one row a match); a trained BT judge would score each response once.")


if __name__ == "__main__":
    main()
