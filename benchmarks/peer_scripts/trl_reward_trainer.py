"""Peer side of bench_rm_training.py, run in the trl 1.16 environment: TRL's RewardTrainer on the given pairs.

argv: model_dir pairs_dir steps batch_size lr warmup max_length seed chat|plain. With `chat`, prompts are formatted
as a user turn of the tokenizer's chat template (the assistant header included), as our side reads them. Prints one JSON line: train seconds,
pairs/s, held-out accuracy (reward of prompt+chosen > reward of prompt+rejected, the same criterion as ours).
"""

import json
import sys
import tempfile
import time

import torch
from datasets import Dataset
from transformers import AutoModelForSequenceClassification, PreTrainedTokenizerFast
from trl import RewardConfig, RewardTrainer


def rows(path):
    with open(path) as handle:
        return [json.loads(line) for line in handle]


def main():
    model_dir, pairs_dir, steps, batch, lr, warmup, max_length, seed, prompts = sys.argv[1:]
    steps, batch, warmup, max_length, seed, lr = int(steps), int(batch), int(warmup), int(max_length), int(seed), float(lr)
    torch.manual_seed(seed)
    tokenizer = PreTrainedTokenizerFast.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=1)
    model.config.pad_token_id = tokenizer.pad_token_id

    def prompt(text):
        if prompts == "plain":
            return text
        return tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                             add_generation_prompt=True)

    train = Dataset.from_list([{"prompt": prompt(r["prompt"]), "chosen": r["chosen"], "rejected": r["rejected"]}
                               for r in rows(f"{pairs_dir}/train.jsonl")])
    args = RewardConfig(output_dir=tempfile.mkdtemp(), max_steps=steps, per_device_train_batch_size=batch,
                        learning_rate=lr, weight_decay=0.0, warmup_steps=warmup,
                        # our optimiser (modules/optim.py): AdamW betas (0.9, 0.95), cosine down to 10% of the lr
                        adam_beta2=0.95, lr_scheduler_type="cosine_with_min_lr",
                        lr_scheduler_kwargs={"min_lr_rate": 0.1},
                        max_grad_norm=1.0, max_length=max_length, use_cpu=True, report_to="none",
                        save_strategy="no", logging_steps=50, seed=seed, dataloader_num_workers=0,
                        disable_tqdm=True,
                        # TRL's defaults differ from ours: it turns on gradient checkpointing and bf16 autocast.
                        # Same settings as our side: fp32, no recomputation.
                        gradient_checkpointing=False, bf16=False)
    trainer = RewardTrainer(model=model, args=args, train_dataset=train, processing_class=tokenizer)
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started

    model.eval()
    test = rows(f"{pairs_dir}/test.jsonl")
    correct = 0
    with torch.no_grad():
        for i in range(0, len(test), 128):
            chunk = test[i:i + 128]
            texts = [prompt(r["prompt"]) + r["chosen"] + tokenizer.eos_token for r in chunk] + \
                    [prompt(r["prompt"]) + r["rejected"] + tokenizer.eos_token for r in chunk]
            tokenizer.padding_side = "right"
            enc = tokenizer(texts, return_tensors="pt", padding=True)
            scores = model(**enc).logits.squeeze(-1)
            chosen, rejected = scores.chunk(2)
            correct += int((chosen > rejected).sum())
    print(json.dumps({"seconds": seconds, "pairs_per_s": steps * batch / seconds, "accuracy": correct / len(test)}))


if __name__ == "__main__":
    main()
