"""Reward scoring throughput: BT score(y) vs generative compare(y, anchor) with both orders.

Both judges start from the same backbone (the default tiny policy). The generative judge reads prompt + two
responses + template text and runs both presentation orders in one batch, reading only the verdict position.
Target (issue 7): generative compare (both orders) costs at most 2.5x a BT score per sample.
"""

from __future__ import annotations

from common import arguments, default_model_dir, digits_rows, interleaved_medians, write_report

from pairwise_rl.rewards.bt import BTReward
from pairwise_rl.rewards.generative import GenerativeReward

TEMPLATE = "{prompt}\nA:{a}\nB:{b}\nBetter:"  # conf/rm/generative.yaml


def main() -> None:
    args = arguments(__doc__)
    model_dir = default_model_dir()
    prompts, responses = digits_rows(args.n)
    anchors = responses[1:] + responses[:1]  # another response of similar length per prompt
    bt = BTReward.from_pretrained(model_dir, max_prompt_tokens=64, max_response_tokens=24)
    generative = GenerativeReward.from_pretrained(model_dir, max_prompt_tokens=64, max_response_tokens=24,
                                                  template=TEMPLATE, verdict_tokens=["A", "B"])
    generative.both_orders = True
    seconds = interleaved_medians({"bt": lambda: bt.score(prompts, responses),
                                   "generative": lambda: generative.compare(prompts, responses, anchors)},
                                  args.repeats)
    bt_s, gen_s = seconds["bt"], seconds["generative"]
    ratio = gen_s / bt_s
    result = {"samples": args.n, "bt_score_samples_per_s": args.n / bt_s,
              "generative_compare_both_orders_samples_per_s": args.n / gen_s, "cost_ratio": ratio,
              "target_max_ratio": 2.5, "target_met": ratio <= 2.5}
    write_report(args.out, "scoring", result,
                 [["BT score(y)", f"{args.n / bt_s:,.0f}", "1.00"],
                  ["generative compare(y, anchor), both orders", f"{args.n / gen_s:,.0f}", f"{ratio:.2f}"]],
                 ["judge call", "samples/s", "cost per sample vs BT"],
                 f"{args.n} digits samples, default tiny model, median of {args.repeats}. Target: ratio <= 2.5 "
                 f"({'met' if ratio <= 2.5 else 'missed'}).")


if __name__ == "__main__":
    main()
