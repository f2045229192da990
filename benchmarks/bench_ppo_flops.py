"""Achieved FLOP/s of the PPO update against the machine's matmul peak, both measured in this run.

The update is what modules/ppo.py does per minibatch: policy forward over prompt + response, per-token logprobs,
the clipped loss, backward, AdamW step; then the critic's forward, value loss, backward, step. FLOPs are counted
exactly for the executed ops with torch's FlopCounterMode (not estimated as 6 x params x tokens). The peak is a
square fp32 matmul large enough to be compute-bound, timed the same way. With --model smollm2 the policy and critic
are SmolLM2-135M-Instruct and the rows HH-RLHF prompts and chosen responses (benchmarks/real.py). The update runs
packed (models/packing.py), so the counted FLOPs are the work actually done, padding excluded.
"""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from common import arguments, default_model_dir, digits_rows, interleaved_medians, report_name, write_report
from real import PROMPT_TOKENS, RESPONSE_TOKENS, hh_rows, real_model_dir
from pairwise_rl.algos.ppo import policy_loss, token_logprobs, value_loss
from pairwise_rl.data.encoding import encode_prompts, encode_response, right_pad
from pairwise_rl.models.chat import use_chat_prompts
from pairwise_rl.models.factory import load_causal_lm, load_scalar_model, load_tokenizer
from pairwise_rl.models.heads import hidden_states, lm_head_logits, scalar_head
from pairwise_rl.modules.optim import adamw

MINIBATCH = 32  # conf/ppo/*.yaml minibatch_size
REAL_MINIBATCH = 8  # experiments/pairwise_vs_bt_hh.yaml ppo.minibatch_size


def matmul_peak(size: int = 1024):
    a, b = torch.randn(size, size), torch.randn(size, size)
    return (lambda: a @ b), 2 * size ** 3


def rollout_batch(tokenizer, prompts, responses, limits=(64, 24)):
    """The layout PPO updates on: left-padded prompts, then right-padded responses ending in eos."""
    prompt = encode_prompts(tokenizer, prompts, limits[0])
    response, response_mask = right_pad([encode_response(tokenizer, r, limits[1]) for r in responses],
                                        tokenizer.pad_token_id)
    return (torch.cat([prompt["input_ids"], response], 1), torch.cat([prompt["attention_mask"], response_mask], 1),
            prompt["input_ids"].shape[1], response, response_mask.float())


def ppo_minibatch_update(policy, critic, rollout, opt_p, opt_c):
    ids, attn, start, targets, mask = rollout

    def step():
        hidden = hidden_states(policy, ids, attn)[:, start - 1:-1]
        logprobs = token_logprobs(lm_head_logits(policy, hidden), targets)
        loss, _ = policy_loss(logprobs, logprobs.detach() - 0.01, torch.ones_like(logprobs), mask, 0.2, None)
        opt_p.zero_grad()
        loss.backward()
        opt_p.step()
        values = scalar_head(critic, hidden_states(critic, ids, attn)[:, start - 1:-1])
        vloss, _ = value_loss(values, values.detach(), torch.zeros_like(values), mask, 0.2)
        opt_c.zero_grad()
        vloss.backward()
        opt_c.step()

    return step


def main() -> None:
    args = arguments(__doc__.splitlines()[0])
    if args.model == "tiny":
        directory, minibatch, limits, what = default_model_dir(), MINIBATCH, (64, 24), "digits rows"
        prompts, targets = digits_rows(minibatch)
    else:
        directory, minibatch, limits = real_model_dir(), REAL_MINIBATCH, (PROMPT_TOKENS, RESPONSE_TOKENS)
        what = "HH-RLHF rows (chat template)"
        prompts, targets, _ = hh_rows(minibatch)
    tokenizer = load_tokenizer(directory)
    if args.model != "tiny":
        use_chat_prompts(tokenizer, True)
    policy, critic = load_causal_lm(directory), load_scalar_model(directory)
    opt_p, opt_c = adamw(policy.parameters(), 1e-6, 0.0), adamw(critic.parameters(), 1e-6, 0.0)
    rollout = rollout_batch(tokenizer, prompts, targets, limits)
    update = ppo_minibatch_update(policy, critic, rollout, opt_p, opt_c)
    peak_fn, peak_flops = matmul_peak()

    with FlopCounterMode(display=False) as counter:
        update()
    update_flops = counter.get_total_flops()
    seconds = interleaved_medians({"update": update, "matmul": peak_fn}, args.repeats)
    achieved, peak = update_flops / seconds["update"], peak_flops / seconds["matmul"]
    tokens = int(rollout[1].sum())
    result = {"model": args.model, "minibatch": minibatch, "tokens": tokens, "update_flops": update_flops,
              "update_seconds": seconds["update"], "achieved_gflops": achieved / 1e9,
              "matmul_peak_gflops": peak / 1e9, "fraction_of_peak": achieved / peak,
              "parameters": sum(p.numel() for p in policy.parameters())}
    write_report(args.out, report_name("ppo_flops", args), result,
                 [["PPO update (policy + critic, fwd + bwd + AdamW)", f"{update_flops / 1e9:.2f}",
                   f"{seconds['update'] * 1e3:.1f}", f"{achieved / 1e9:.1f}"],
                  ["fp32 matmul 1024^3 (peak)", f"{peak_flops / 1e9:.2f}", f"{seconds['matmul'] * 1e3:.1f}",
                   f"{peak / 1e9:.1f}"]],
                 ["work", "GFLOP", "ms (median)", "GFLOP/s"],
                 f"{'Default tiny policy' if args.model == 'tiny' else 'SmolLM2-135M-Instruct'} "
                 f"({result['parameters']:,} parameters), minibatch of {minibatch} {what} "
                 f"({tokens} tokens), {torch.get_num_threads()} threads. The update reaches "
                 f"**{achieved / peak:.1%}** of the measured matmul peak.")


if __name__ == "__main__":
    main()
