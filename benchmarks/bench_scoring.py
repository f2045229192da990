"""Reward scoring throughput: BT score(y) vs generative compare(y, anchor) with both orders.

Both judges start from the same backbone (the default tiny policy, or SmolLM2-135M-Instruct with --model smollm2).
The generative judge reads prompt + two responses + template text and runs both presentation orders in one batch,
reading only the verdict position. Both judges run packed (models/packing.py: padding-free, every shared token
prefix computed once: the prompt for both orders, a BT pair's prompt for both responses) and, as the before, padded
(trainer.packing=false). Target (issue 17, real model): generative compare (both orders) costs at most 2x a BT score.

Both judges are compute-bound, so the report also counts the tokens each one computes: real, padded, and packed
(the cells of the packed rows, shared prefixes counted once).
"""

from __future__ import annotations

import os

from common import arguments, default_model_dir, digits_rows, interleaved_medians, report_name, write_report
from real import PROMPT_TOKENS, RESPONSE_TOKENS, hh_rows, real_model_dir

from pairwise_rl.data.encoding import encode_scored_sequences
from pairwise_rl.models import packing
from pairwise_rl.models.chat import use_chat_prompts
from pairwise_rl.rewards.bt import BTReward
from pairwise_rl.rewards.generative import GenerativeReward

TEMPLATE = "{prompt}\nA:{a}\nB:{b}\nBetter:"  # conf/rm/generative.yaml


def token_counts(bt: BTReward, generative: GenerativeReward, prompts, responses, anchors) -> dict:
    """Input tokens the two judge calls read, chunk by chunk as each one runs: real, padded, and the generative
    judge's exact shared-prefix floor."""
    counts = dict(bt_real=0, bt_padded=0, bt_packed=0, judge_real=0, judge_padded=0, judge_packed=0,
                  judge_shared_prefix=0)
    for i in range(0, len(prompts), bt.batch_size):
        chunk = slice(i, i + bt.batch_size)
        batch = encode_scored_sequences(bt.tokenizer, prompts[chunk], responses[chunk], bt.max_prompt_tokens,
                                        bt.max_response_tokens)
        counts["bt_real"] += int(batch["attention_mask"].sum())
        counts["bt_padded"] += batch["input_ids"].numel()
        counts["bt_packed"] += _packed_cells(bt.model, batch)
    for i in range(0, len(prompts), generative.batch_size):
        p, y, a = (rows[i:i + generative.batch_size] for rows in (prompts, responses, anchors))
        batch = generative._encode(p + p, y + a, a + y)  # both orders in one batch, as compare() runs them
        rows = [ids[mask.bool()].tolist() for ids, mask in zip(batch["input_ids"], batch["attention_mask"])]
        counts["judge_real"] += int(batch["attention_mask"].sum())
        counts["judge_padded"] += batch["input_ids"].numel()
        counts["judge_packed"] += _packed_cells(generative.model, batch)
        counts["judge_shared_prefix"] += sum(len(os.path.commonprefix([first, second]))
                                             for first, second in zip(rows[:len(p)], rows[len(p):]))
    return {**counts, "real_ratio": counts["judge_real"] / counts["bt_real"],
            "padded_ratio": counts["judge_padded"] / counts["bt_padded"],
            "packed_ratio": counts["judge_packed"] / counts["bt_packed"],
            "shared_prefix_floor": (counts["judge_real"] - counts["judge_shared_prefix"]) / counts["bt_real"]}


def _packed_cells(model, batch) -> int:
    plan = packing.plan_for(model, batch["input_ids"], batch["attention_mask"])
    return batch["input_ids"].numel() if plan is None else plan.cells


def _padded(fn):
    def run():
        with packing.disabled():
            return fn()
    return run


def main() -> None:
    args = arguments(__doc__)
    if args.model == "tiny":
        n, model_dir, limits, what = args.n or 1024, default_model_dir(), (64, 24), "digits samples, default tiny model"
        prompts, responses = digits_rows(n)
        anchors = responses[1:] + responses[:1]  # another response of similar length per prompt
    else:
        n, model_dir, limits = args.n or 32, real_model_dir(), (PROMPT_TOKENS, RESPONSE_TOKENS)
        what = (f"HH-RLHF rows (prompts <= {PROMPT_TOKENS} tokens, responses <= {RESPONSE_TOKENS}, chat template), "
                "SmolLM2-135M-Instruct; the response is the rejected answer, the anchor the chosen one "
                "(ppo.anchor=reference)")
        prompts, anchors, responses = hh_rows(n)
    bt = BTReward.from_pretrained(model_dir, max_prompt_tokens=limits[0], max_response_tokens=limits[1])
    generative = GenerativeReward.from_pretrained(model_dir, max_prompt_tokens=limits[0],
                                                  max_response_tokens=limits[1], template=TEMPLATE,
                                                  verdict_tokens=["A", "B"])
    if args.model != "tiny":  # instruct models read prompts as a chat turn (model.chat_template=true)
        use_chat_prompts(bt.tokenizer, True)
        use_chat_prompts(generative.tokenizer, True)
    generative.both_orders = True
    score = lambda: bt.score(prompts, responses)  # noqa: E731
    compare = lambda: generative.compare(prompts, responses, anchors)  # noqa: E731
    seconds = interleaved_medians({"bt": score, "generative": compare, "bt_padded": _padded(score),
                                   "generative_padded": _padded(compare)}, args.repeats)
    ratio = seconds["generative"] / seconds["bt"]
    before = seconds["generative_padded"] / seconds["bt_padded"]
    tokens = token_counts(bt, generative, prompts, responses, anchors)  # tokenizers and packing plans, no model
    target = 2.0 if args.model != "tiny" else None
    met = None if target is None else ratio <= target
    per_s = {name: n / s for name, s in seconds.items()}
    result = {"model": args.model, "samples": n, "samples_per_s": per_s, "cost_ratio": ratio,
              "cost_ratio_padded": before, "input_tokens": tokens, "target_max_ratio": target, "target_met": met}
    goal = "No target on the tiny model" if target is None else \
        f"Target: ratio <= {target:g} ({'met' if met else 'missed'})"
    write_report(args.out, report_name("scoring", args), result,
                 [["BT score(y)", f"{per_s['bt']:,.1f}", "1.00", f"{per_s['bt_padded']:,.1f}"],
                  ["generative compare(y, anchor), both orders", f"{per_s['generative']:,.1f}", f"{ratio:.2f}",
                   f"{per_s['generative_padded']:,.1f} ({before:.2f})"]],
                 ["judge call", "samples/s, packed", "cost per sample vs BT", "padded: samples/s (cost vs BT)"],
                 f"{n} {what}; median of {args.repeats}, the four calls alternating. {goal}. Tokens computed, "
                 f"judge (both orders) / BT: {tokens['real_ratio']:.2f}x real, {tokens['padded_ratio']:.2f}x padded, "
                 f"{tokens['packed_ratio']:.2f}x packed (judge {tokens['judge_packed']:,} cells for "
                 f"{tokens['judge_real']:,} real tokens; BT {tokens['bt_packed']:,} for {tokens['bt_real']:,}).")


if __name__ == "__main__":
    main()
