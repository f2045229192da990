"""How much a bf16 judge's verdict readout rounds, against the spread of the reward it gives (issue 36, step 0).

Under bf16-mixed a frozen judge is loaded in bf16 (precision.frozen_dtype). Before this change its two verdict logits
came out of a bf16 product; now `GenerativeReward._verdict_margin` multiplies the same bf16 hidden state and head rows
in fp32. This compares, on one set of digits pairs judged in both orders by SmolLM2-135M-Instruct (the
pretrained_judge experiment's template, zero-shot: the weak judge the issue worries about):

  * exact: the bf16 judge's hidden state times its head rows in float64 (what the fp32 product gives, to 1e-5)
  * bf16 product: the old readout
  * fp32 model: the same judge in fp32 weights, computing in fp32 throughout (ppo.rm_precision=float32: how far
    bf16 weights and compute themselves move the verdict)

and reports, for both order averages (probability, log_odds), the error each readout puts into p = P(y1 beats y2)
beside the spread of p over the pairs (its std: the signal PPO sees), plus the judge's position bias.

    python benchmarks/bench_verdict_precision.py [--n 128]     # needs stage=fetch_model model=smollm2_135m_instruct
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import arguments, digits_rows, write_report  # noqa: E402
from benchmarks.real import real_model_dir  # noqa: E402
from pairwise_rl.algos.preference import ORDER_AVERAGES  # noqa: E402
from pairwise_rl.rewards.generative import GenerativeReward  # noqa: E402

TEMPLATE = ("Task: {prompt}\nAnswer A:{a}\nAnswer B:{b}\nWhich answer is better, A or B? Reply with one letter.")


def corrupt(answer: str, rng: random.Random) -> str:
    """A plausible wrong answer: one number of the answer changed by one digit."""
    tokens = answer.split()
    i = rng.randrange(len(tokens))
    digits = list(tokens[i])
    j = rng.randrange(len(digits))
    digits[j] = str((int(digits[j]) + rng.randrange(1, 10)) % 10)
    tokens[i] = "".join(digits)
    return " " + " ".join(tokens)


def margins(judge: GenerativeReward, prompts, a, b, readout: str) -> torch.Tensor:
    """l_A - l_B per row, read out as `readout`: exact (float64 product), bf16 (the old product), fp32 (the new)."""
    with torch.no_grad():
        if readout == "fp32":
            return judge._verdict_margin(prompts, a, b).double()
        hidden = judge._verdict_hidden(prompts, a, b)
        rows = judge.model.get_output_embeddings().weight[list(judge.verdict_ids)]
        logits = hidden.double() @ rows.double().T if readout == "exact" else (hidden @ rows.T).double()
        return logits[:, 0] - logits[:, 1]


def both_orders(judge, prompts, y1, y2, readout):
    m = margins(judge, prompts + prompts, y1 + y2, y2 + y1, readout)
    return m.chunk(2)


def main() -> None:
    args = arguments(__doc__.splitlines()[0])
    n = args.n or 128
    model_dir = real_model_dir()
    prompts, targets = digits_rows(n, seed=7)
    rng = random.Random(0)
    wrong = [corrupt(t, rng) for t in targets]
    # Half the pairs put the right answer first, so "y1 wins" is not always the true verdict.
    y1 = [t if i % 2 == 0 else w for i, (t, w) in enumerate(zip(targets, wrong))]
    y2 = [w if i % 2 == 0 else t for i, (t, w) in enumerate(zip(targets, wrong))]
    spec = dict(max_prompt_tokens=64, max_response_tokens=24, template=TEMPLATE, verdict_tokens=["A", "B"])
    started = time.perf_counter()
    bf16 = GenerativeReward.from_pretrained(model_dir, dtype="bfloat16", **spec)
    fp32 = GenerativeReward.from_pretrained(model_dir, dtype="float32", **spec)
    readouts = {"exact": both_orders(bf16, prompts, y1, y2, "exact"),
                "bf16 product (old)": both_orders(bf16, prompts, y1, y2, "bf16"),
                "fp32 product (new)": both_orders(bf16, prompts, y1, y2, "fp32"),
                "fp32 model": both_orders(fp32, prompts, y1, y2, "fp32")}
    seconds = time.perf_counter() - started
    m1, m2 = readouts["exact"]
    with torch.no_grad():
        hidden = bf16._verdict_hidden(prompts, y1, y2)
        rows = bf16.model.get_output_embeddings().weight[list(bf16.verdict_ids)]
        verdict_logits = (hidden.double() @ rows.double().T).abs()
    result = {"pairs": n, "seconds": round(seconds, 1), "mean_abs_verdict_logit": float(verdict_logits.mean()),
              "position_bias_logits": float(((m1 + m2) / 2).mean()), "readouts": {}}
    table = []
    truth = torch.tensor([i % 2 == 0 for i in range(n)])  # y1 is the right answer on even rows
    f1, f2 = readouts["fp32 model"]
    for average in ("probability", "log_odds"):
        combine = ORDER_AVERAGES.get(average)
        p_exact = combine(m1, m2).double()
        p_fp32 = combine(f1, f2).double()
        spread = float(p_exact.std())
        result["readouts"][average] = {"p_std": spread}
        for name in ("bf16 product (old)", "fp32 product (new)", "fp32 model"):
            a, b = readouts[name]
            error = (combine(a, b).double() - p_exact).abs()
            margin_error = float(torch.cat([(a - m1).abs(), (b - m2).abs()]).mean())
            p = combine(a, b).double()
            accuracy = float(((p > 0.5) == truth).float().mean())
            agreement = float(((p - 0.5) * (p_fp32 - 0.5) > 0).float().mean())  # same winner as the fp32 judge
            result["readouts"][average][name] = {"margin_abs_error": margin_error, "p_abs_error": float(error.mean()),
                                                 "p_max_error": float(error.max()),
                                                 "error_over_spread": float(error.mean()) / spread,
                                                 "accuracy": accuracy, "same_winner_as_fp32_judge": agreement}
            table.append([average, name, f"{margin_error:.4f}", f"{float(error.mean()):.5f}",
                          f"{float(error.max()):.5f}", f"{spread:.5f}", f"{float(error.mean()) / spread:.3f}",
                          f"{accuracy:.3f}", f"{agreement:.3f}"])
    notes = (f"SmolLM2-135M-Instruct as a zero-shot generative judge (bf16 weights, the pretrained_judge template) on "
             f"{n} digits pairs (right answer vs one digit changed), both orders. Mean |verdict logit| "
             f"{result['mean_abs_verdict_logit']:.2f}; position bias (mean of the two orders' margins) "
             f"{result['position_bias_logits']:+.3f} logits. Errors are against the bf16 judge's exact product "
             f"(float64). p spread = std of P(y1 beats y2) over the pairs. {seconds:.0f} s.")
    write_report(args.out, "verdict_precision_real", result, table,
                 ["order average", "readout", "mean abs margin error (logits)", "mean abs p error", "max abs p error",
                  "p spread (std)", "error / spread", "accuracy (right answer wins)", "same winner as the fp32 judge"],
                 notes)


if __name__ == "__main__":
    main()
