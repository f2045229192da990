"""Rollout throughput: pairwise_rl.models.generation.generate (what PPO, evaluation and pair collection call)
against a plain HF `model.generate` loop at the same settings (sampling, temperature 1, same batch and length).

The wrapper adds tokenization, seeding, the response mask and decoding; this measures what that costs.
"""

from __future__ import annotations

import torch
from common import arguments, default_model_dir, digits_rows, interleaved_medians, write_report

from pairwise_rl.data.encoding import encode_prompts
from pairwise_rl.models.factory import load_causal_lm, load_tokenizer
from pairwise_rl.models.generation import generate

MAX_NEW_TOKENS = 20


def main() -> None:
    args = arguments(__doc__)
    model_dir = default_model_dir()
    model, tokenizer = load_causal_lm(model_dir), load_tokenizer(model_dir)
    model.eval()
    n = args.n or 1024
    prompts, _ = digits_rows(n)
    batch = encode_prompts(tokenizer, prompts, 64)
    new_tokens = {}

    def ours():
        out = generate(model, tokenizer, prompts, max_new_tokens=MAX_NEW_TOKENS, max_prompt_tokens=64,
                       generator_seed=0)
        new_tokens["ours"] = int(out.response_mask.sum())

    @torch.no_grad()
    def plain_hf():
        torch.manual_seed(0)
        out = model.generate(**batch, max_new_tokens=MAX_NEW_TOKENS, do_sample=True, temperature=1.0, top_k=None,
                             top_p=1.0, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
        response = out[:, batch["input_ids"].shape[1]:]
        new_tokens["hf"] = int((response != tokenizer.pad_token_id).sum())

    seconds = interleaved_medians({"ours": ours, "hf": plain_hf}, args.repeats)
    ours_s, hf_s = seconds["ours"], seconds["hf"]
    ratio = (new_tokens["ours"] / ours_s) / (new_tokens["hf"] / hf_s)
    result = {"prompts": n, "max_new_tokens": MAX_NEW_TOKENS, "ours_new_tokens_per_s": new_tokens["ours"] / ours_s,
              "hf_new_tokens_per_s": new_tokens["hf"] / hf_s, "throughput_ratio": ratio}
    write_report(args.out, "rollout", result,
                 [["pairwise_rl generate", f"{new_tokens['ours'] / ours_s:,.0f}", f"{ratio:.2f}"],
                  ["plain HF generate", f"{new_tokens['hf'] / hf_s:,.0f}", "1.00"]],
                 ["sampler", "new tokens/s", "throughput vs HF"],
                 f"{n} digits prompts in one batch, sampling at temperature 1, up to {MAX_NEW_TOKENS} new tokens, "
                 f"default tiny model, median of {args.repeats}.")


if __name__ == "__main__":
    main()
