"""Reward scoring throughput: BT score(y) vs generative compare(y, anchor) with both orders.

Both judges start from the same backbone (the default tiny policy). The generative judge reads prompt + two
responses + template text and runs both presentation orders in one batch, reading only the verdict position.
Target (issue 7): generative compare (both orders) costs at most 2.5x a BT score per sample.

Both judges are compute-bound, so the report also counts the input tokens each one reads (through the judges' own
encoders): real and padded, and the floor that an exact shared-prefix KV cache would reach (each pair's two orders
share their longest common token prefix, computed once).
"""

from __future__ import annotations

import os

from common import arguments, default_model_dir, digits_rows, interleaved_medians, write_report

from pairwise_rl.data.encoding import encode_scored_sequences
from pairwise_rl.rewards.bt import BTReward
from pairwise_rl.rewards.generative import GenerativeReward

TEMPLATE = "{prompt}\nA:{a}\nB:{b}\nBetter:"  # conf/rm/generative.yaml


def token_counts(bt: BTReward, generative: GenerativeReward, prompts, responses, anchors) -> dict:
    """Input tokens the two judge calls read, chunk by chunk as each one runs: real, padded, and the generative
    judge's exact shared-prefix floor."""
    counts = dict(bt_real=0, bt_padded=0, judge_real=0, judge_padded=0, judge_shared_prefix=0)
    for i in range(0, len(prompts), bt.batch_size):
        chunk = slice(i, i + bt.batch_size)
        batch = encode_scored_sequences(bt.tokenizer, prompts[chunk], responses[chunk], bt.max_prompt_tokens,
                                        bt.max_response_tokens)
        counts["bt_real"] += int(batch["attention_mask"].sum())
        counts["bt_padded"] += batch["input_ids"].numel()
    for i in range(0, len(prompts), generative.batch_size):
        p, y, a = (rows[i:i + generative.batch_size] for rows in (prompts, responses, anchors))
        batch = generative._encode(p + p, y + a, a + y)  # both orders in one batch, as compare() runs them
        rows = [ids[mask.bool()].tolist() for ids, mask in zip(batch["input_ids"], batch["attention_mask"])]
        counts["judge_real"] += int(batch["attention_mask"].sum())
        counts["judge_padded"] += batch["input_ids"].numel()
        counts["judge_shared_prefix"] += sum(len(os.path.commonprefix([first, second]))
                                             for first, second in zip(rows[:len(p)], rows[len(p):]))
    return {**counts, "real_ratio": counts["judge_real"] / counts["bt_real"],
            "padded_ratio": counts["judge_padded"] / counts["bt_padded"],
            "shared_prefix_floor": (counts["judge_real"] - counts["judge_shared_prefix"]) / counts["bt_real"]}


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
    tokens = token_counts(bt, generative, prompts, responses, anchors)  # tokenizers only, no model
    result = {"samples": args.n, "bt_score_samples_per_s": args.n / bt_s,
              "generative_compare_both_orders_samples_per_s": args.n / gen_s, "cost_ratio": ratio,
              "input_tokens": tokens, "target_max_ratio": 2.5, "target_met": ratio <= 2.5}
    write_report(args.out, "scoring", result,
                 [["BT score(y)", f"{args.n / bt_s:,.0f}", "1.00"],
                  ["generative compare(y, anchor), both orders", f"{args.n / gen_s:,.0f}", f"{ratio:.2f}"]],
                 ["judge call", "samples/s", "cost per sample vs BT"],
                 f"{args.n} digits samples, default tiny model, median of {args.repeats}. Target: ratio <= 2.5 "
                 f"({'met' if ratio <= 2.5 else 'missed'}). Input tokens, judge (both orders) / BT: "
                 f"{tokens['real_ratio']:.2f}x real, {tokens['padded_ratio']:.2f}x padded; an exact shared-prefix "
                 f"KV cache would still read {tokens['shared_prefix_floor']:.2f}x the real tokens.")


if __name__ == "__main__":
    main()
