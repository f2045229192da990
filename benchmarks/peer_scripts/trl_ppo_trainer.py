"""Peer side of bench_ppo.py, run in the trl 1.12.0 environment: TRL's PPOTrainer (trl.experimental.ppo).

argv: model_dir iterations rollout minibatch epochs response_length seed data prompt_tokens benchmarks_dir. data:
digits (the tiny model's prompts) | hh (HH-RLHF prompts as a chat turn, benchmarks/real.py). The same model is the
policy, the reference, the reward model and the value model's backbone (as on our side). Prints one JSON line.
"""

import json
import sys
import tempfile
import time

import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, PreTrainedTokenizerFast
from trl.experimental.ppo import PPOConfig, PPOTrainer

sys.path.insert(0, sys.argv[-1])  # the benchmarks directory: the same digits prompts as our side
from common import digits_rows  # noqa: E402
from real import hh_rows  # noqa: E402


def main():
    model_dir, iterations, rollout, minibatch, epochs, response_length, seed, data, prompt_tokens, _ = sys.argv[1:]
    iterations, rollout, minibatch, epochs = int(iterations), int(rollout), int(minibatch), int(epochs)
    torch.manual_seed(int(seed))
    tokenizer = PreTrainedTokenizerFast.from_pretrained(model_dir)
    tokenizer.padding_side = "left"
    policy = AutoModelForCausalLM.from_pretrained(model_dir)
    reference = AutoModelForCausalLM.from_pretrained(model_dir)
    reward = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=1)
    value = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=1)
    keep = int(prompt_tokens)  # data.max_prompt_tokens: the end of each prompt, as our side keeps it
    if data == "digits":
        prompts, _ = digits_rows(rollout * iterations, seed=int(seed))
        ids = [tokenizer(p)["input_ids"][-keep:] for p in prompts]
    else:  # the rows and chat formatting of our side (bench_ppo.Shape.prompts, models/chat.py)
        prompts, _, _ = hh_rows(rollout * iterations, offset=int(seed) * 100)
        texts = [tokenizer.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True,
                                               tokenize=False) for p in prompts]
        ids = [row[-keep:] for row in tokenizer(texts, add_special_tokens=False)["input_ids"]]
    train = Dataset.from_dict({"input_ids": ids})
    args = PPOConfig(
        output_dir=tempfile.mkdtemp(), report_to="none", save_strategy="no", logging_steps=10_000, seed=int(seed),
        use_cpu=True, disable_tqdm=True, dataloader_num_workers=0,
        # TRL's defaults differ from ours: gradient checkpointing and bf16 autocast on; the same settings as ours:
        gradient_checkpointing=False, bf16=False,
        # one rollout of `rollout` prompts per iteration, `epochs` passes in minibatches of `minibatch`, one optimiser
        # step per minibatch (gradient_accumulation_steps=1: TRL steps once per accumulation cycle)
        per_device_train_batch_size=rollout, gradient_accumulation_steps=1, num_mini_batches=rollout // minibatch,
        num_ppo_epochs=epochs, total_episodes=rollout * iterations, local_rollout_forward_batch_size=rollout,
        response_length=int(response_length), temperature=1.0, stop_token_id=tokenizer.eos_token_id,
        learning_rate=3e-5, kl_coef=0.05, cliprange=0.2, cliprange_value=0.2, vf_coef=0.5, gamma=1.0, lam=0.95,
        num_sample_generations=0, missing_eos_penalty=None)
    trainer = PPOTrainer(args=args, processing_class=tokenizer, model=policy, ref_model=reference,
                         reward_model=reward, value_model=value, train_dataset=train, eval_dataset=train.select(range(8)))
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "samples_per_s": rollout * iterations / seconds}))


if __name__ == "__main__":
    main()
