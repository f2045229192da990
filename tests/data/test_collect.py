"""Collecting preference pairs from a policy: what rm_scaling's nested data sizes rely on."""

import random

from omegaconf import OmegaConf

from pairwise_rl.data.collect import collect_preferences
from pairwise_rl.models.factory import build_tiny_causal_lm
from pairwise_rl.models.tokenizer import build_char_tokenizer
from pairwise_rl.tasks.oracle import label_pair

TINY = dict(arch="llama", hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64, max_position_embeddings=128)
GENERATION = OmegaConf.create({"max_new_tokens": 6, "temperature": 1.0, "top_k": 0, "top_p": 1.0})
TAUS = {"sort": 0.05, "reverse": 0.1, "add": 0.3}


def test_a_smaller_collection_is_the_start_of_a_larger_one():
    """Same prompts, seeds and chunking whatever the size asked for: 6 pairs are the first 6 of 20, labels too,
    including pairs from a second pass over the prompts (8 prompts cannot give 20 pairs in one)."""
    tokenizer = build_char_tokenizer()
    policy = build_tiny_causal_lm(OmegaConf.create(TINY), tokenizer, seed=0)
    prompts = [f"sort: {i} {i + 3} 1 =" for i in range(8)]

    def label(prompt, y1, y2, rng: random.Random):
        return label_pair(prompt, y1, y2, TAUS, rng)

    small = collect_preferences(policy, tokenizer, prompts, 6, GENERATION, 32, seed=3, label=label, chunk=4)
    large = collect_preferences(policy, tokenizer, prompts, 20, GENERATION, 32, seed=3, label=label, chunk=4)
    assert len(small.pairs) == 6 and len(large.pairs) == 20 and large.prompts_used > len(prompts)
    assert [p.to_dict() for p in large.pairs[:6]] == [p.to_dict() for p in small.pairs]
