"""fp32 (trainer.precision=32-true) against bf16-mixed, both sides in one run, alternating (a, b, a, b, ...).

bf16-mixed is what the project runs under `auto` on hardware with native bf16 dot products: trained models keep
fp32 master weights and compute under bf16 autocast, frozen models (the RM or judge being scored) hold bf16
weights, PPO's reference computes as the policy does, and sampling runs on a bf16 copy of the policy (models/sampling.py). Measured:

* BT RM training: loss, backward and AdamW on batches of preference pairs;
* judge scoring: the generative judge's P(A beats B) in both orders; RM evaluation: the BT RM scoring pairs;
* sampling: new tokens/s at batch 16 and 64 -- plain HF `generate` on fp32 weights, ours on fp32, ours on bf16;
* the PPO update's FLOP/s (FlopCounterMode) against the matmul peak of the same precision, both timed here;
* a PPO iteration of PPOModule under Lightning (rollout, reference, reward, critic, update), and its numerics:
  the first minibatch's importance ratio (mean and max |ratio - 1|: before any update it would be 1 exactly) and
  the rollout's KL to the reference at iteration 0 (0 exactly for the same weights), per ppo.rollout_logprobs;
* (--model tiny only) a training step of Llama-style models of growing width: where bf16 starts to pay, which sets
  precision.BF16_MIN_HIDDEN.

--model smollm2 (make bench-real): SmolLM2-135M-Instruct on HH-RLHF rows (benchmarks/real.py); --model tiny (make
bench): the default digits model.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Callable, Dict, List

import torch
from bench_ppo import Shape
from bench_ppo_flops import ppo_minibatch_update, rollout_batch
from common import arguments, default_model_dir, digits_rows, interleaved_medians, report_name, write_report
from hydra import compose, initialize_config_dir
from lightning.fabric.utilities.seed import seed_everything
from lightning.pytorch.callbacks import Callback
from real import PROMPT_TOKENS, RESPONSE_TOKENS, hh_rows, real_model_dir
from torch.utils.flop_counter import FlopCounterMode
from transformers import AutoModelForCausalLM, LlamaConfig

from pairwise_rl import precision
from pairwise_rl.cli import CONF_DIR
from pairwise_rl.data.records import Preference
from pairwise_rl.models.chat import use_chat_prompts
from pairwise_rl.models.factory import load_causal_lm, load_scalar_model, load_tokenizer
from pairwise_rl.models.generation import generate
from pairwise_rl.models.sampling import SamplingCopy, plain_copy, wants_copy
from pairwise_rl.modules.optim import adamw
from pairwise_rl.modules.ppo import PPOModule, rollout_logprobs_for
from pairwise_rl.rewards.bt import BTReward
from pairwise_rl.rewards.generative import GenerativeReward
from pairwise_rl.tasks.base import load_task
from pairwise_rl.training import build_trainer

SIDES = ("32-true", "bf16-mixed")
BF16 = torch.bfloat16
TEMPLATE = "{prompt}\nA:{a}\nB:{b}\nBetter:"  # conf/rm/generative.yaml
WIDTHS = ((128, 256, 4, 4), (256, 512, 4, 4), (384, 1024, 6, 6), (576, 1536, 6, 9))  # hidden, mlp, layers, heads


def computing(side: str):
    return torch.autocast("cpu", BF16) if side == "bf16-mixed" else nullcontext()


class Data:
    def __init__(self, model: str, pairs: int):
        self.real = model != "tiny"
        if self.real:
            self.dir, self.limits = real_model_dir(), (PROMPT_TOKENS, RESPONSE_TOKENS)
            prompts, chosen, rejected = hh_rows(pairs)
        else:
            self.dir, self.limits = default_model_dir(), (64, 24)
            prompts, chosen = digits_rows(pairs)
            rejected = [c[::-1] for c in chosen]
        self.pairs = [Preference(p, c, r) for p, c, r in zip(prompts, chosen, rejected)]
        self.tokenizer = use_chat_prompts(load_tokenizer(self.dir), self.real)

    def reward_model(self, cls, dtype: str):
        extra = {"template": TEMPLATE, "verdict_tokens": ["A", "B"]} if cls is GenerativeReward else {}
        rm = cls.from_pretrained(self.dir, dtype=dtype, max_prompt_tokens=self.limits[0],
                                 max_response_tokens=self.limits[1], **extra)
        use_chat_prompts(rm.tokenizer, self.real)
        return rm


def ratio(seconds: Dict[str, float], unit_per_call: float) -> Dict[str, float]:
    """Throughput of each side and bf16's speed-up over fp32."""
    rate = {side: unit_per_call / s for side, s in seconds.items()}
    return {**{f"{side}_per_s": r for side, r in rate.items()}, "speedup": rate["bf16-mixed"] / rate["32-true"]}


def rm_training(data: Data, repeats: int, batch: int) -> Dict[str, float]:
    sides = {}
    for side in SIDES:
        rm = data.reward_model(BTReward, "float32")  # trained: fp32 master weights on both sides
        rm.model.train()
        opt = adamw(rm.model.parameters(), 1e-5, 0.0)

        def step(rm=rm, opt=opt, side=side):
            with computing(side):
                loss, _ = rm.training_loss(data.pairs[:batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
        sides[side] = step
    return ratio(interleaved_medians(sides, repeats), batch)


def scoring(data: Data, cls, repeats: int, n: int) -> Dict[str, float]:
    """Frozen judge: fp32 weights against bf16 weights under autocast."""
    pairs = data.pairs[:n]
    args = ([p.prompt for p in pairs], [p.chosen for p in pairs], [p.rejected for p in pairs])
    sides = {}
    for side, dtype in zip(SIDES, ("float32", "bfloat16")):
        rm = data.reward_model(cls, dtype)

        def score(rm=rm, side=side):
            with computing(side):
                rm.pair_probabilities(*args)
        sides[side] = score
    return ratio(interleaved_medians(sides, repeats), n)


def sampling(data: Data, repeats: int, batch: int, new_tokens: int) -> Dict[str, float]:
    policy = load_causal_lm(data.dir)
    bf16 = plain_copy(policy, BF16)
    prompts = [p.prompt for p in data.pairs[:batch]]
    counted: Dict[str, List[int]] = {"hf_fp32": [], "ours_fp32": [], "ours_bf16": []}

    def ours(model, name):
        def run():
            out = generate(model, data.tokenizer, prompts, max_new_tokens=new_tokens,
                           max_prompt_tokens=data.limits[0], generator_seed=0, return_logprobs=True)
            counted[name].append(int(out.response_mask.sum()))
        return run

    def plain_hf():
        batch_ids = data.tokenizer(prompts, return_tensors="pt", padding=True)
        with torch.no_grad():
            out = policy.generate(**batch_ids, max_new_tokens=new_tokens, do_sample=True, top_k=0,
                                  pad_token_id=data.tokenizer.pad_token_id)
        new = out[:, batch_ids["input_ids"].shape[1]:]
        counted["hf_fp32"].append(int((new != data.tokenizer.pad_token_id).sum()))

    seconds = interleaved_medians({"hf_fp32": plain_hf, "ours_fp32": ours(policy, "ours_fp32"),
                                   "ours_bf16": ours(bf16, "ours_bf16")}, repeats)
    rates = {name: statistics.median(counted[name]) / s for name, s in seconds.items()}
    return {**{f"{k}_new_tokens_per_s": v for k, v in rates.items()},
            "speedup_vs_hf_fp32": rates["ours_bf16"] / rates["hf_fp32"],
            "speedup_vs_ours_fp32": rates["ours_bf16"] / rates["ours_fp32"]}


def matmul(dtype: torch.dtype, m: int = 2048, k: int = 576, n: int = 1536):
    a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
    return (lambda: a @ b), 2 * m * k * n


def update_flops(data: Data, repeats: int, minibatch: int) -> Dict[str, float]:
    prompts = [p.prompt for p in data.pairs[:minibatch]]
    rollout = rollout_batch(data.tokenizer, prompts, [p.chosen for p in data.pairs[:minibatch]], data.limits)
    out: Dict[str, float] = {}
    fns: Dict[str, Callable[[], None]] = {}
    for side, dtype in zip(SIDES, (torch.float32, BF16)):
        policy, critic = load_causal_lm(data.dir), load_scalar_model(data.dir)
        update = ppo_minibatch_update(policy, critic, rollout, adamw(policy.parameters(), 1e-6, 0.0),
                                      adamw(critic.parameters(), 1e-6, 0.0))

        def step(update=update, side=side):
            with computing(side):
                update()
        with FlopCounterMode(display=False) as counter:
            step()
        out[f"{side}_update_gflop"] = counter.get_total_flops() / 1e9
        fns[f"update {side}"], (fns[f"peak {side}"], out[f"{side}_peak_gflop"]) = step, matmul(dtype)
        out[f"{side}_peak_gflop"] /= 1e9
    seconds = interleaved_medians(fns, repeats)
    for side in SIDES:
        out[f"{side}_update_gflops"] = out[f"{side}_update_gflop"] / seconds[f"update {side}"]
        out[f"{side}_peak_gflops"] = out[f"{side}_peak_gflop"] / seconds[f"peak {side}"]
        out[f"{side}_fraction_of_peak"] = out[f"{side}_update_gflops"] / out[f"{side}_peak_gflops"]
    out["bf16_update_vs_bf16_peak"] = out["bf16-mixed_fraction_of_peak"]
    out["speedup"] = out["bf16-mixed_update_gflops"] / out["32-true_update_gflops"]
    return out


class Recorder(Callback):
    def __init__(self):
        self.rows: List[Dict[str, float]] = []

    def on_train_batch_end(self, trainer, module, *args) -> None:
        self.rows.append(dict(module.last_metrics))


def ppo_run(shape: Shape, side: str, seed: int, rollout_logprobs: str) -> Dict[str, float]:
    """PPOModule as the PPO stage builds it (the RM in the frozen dtype, a bf16 sampling copy)."""
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=[
            "rm=bt", "ppo=standard", f"ppo.iterations={shape.iterations}", f"ppo.rollout_batch_size={shape.rollout}",
            f"ppo.minibatch_size={shape.minibatch}", f"ppo.ppo_epochs={shape.epochs}",
            f"generation.max_new_tokens={shape.response}", f"ppo.val_every={shape.iterations}",
            f"ppo.checkpoint_every={shape.iterations + 1}", "logger=none", "trainer.progress_bar=none",
            f"seed={seed}", f"ppo.rollout_logprobs={rollout_logprobs}", f"trainer.precision={side}",
            "paths.root_dir=.", "paths.output_dir=.", "paths.cache_dir=.", *shape.overrides()])
    seed_everything(seed, verbose=False)
    frozen = precision.frozen_dtype(cfg)
    tokenizer = use_chat_prompts(load_tokenizer(shape.model_dir), shape.real)
    critic = load_scalar_model(shape.model_dir)
    torch.nn.init.zeros_(critic.score.weight)
    reward = BTReward.from_pretrained(shape.model_dir, dtype=frozen, max_prompt_tokens=shape.limits[0],
                                      max_response_tokens=shape.limits[1])
    use_chat_prompts(reward.tokenizer, shape.real)
    prompts = shape.prompts(seed)
    copy_dtype = wants_copy(cfg)
    module = PPOModule(load_causal_lm(shape.model_dir), load_causal_lm(shape.model_dir), critic, reward,
                       tokenizer, load_task(cfg), prompts, prompts[:1], cfg, seed,
                       sampler=None if copy_dtype is None else SamplingCopy(copy_dtype))
    recorder = Recorder()
    trainer = build_trainer(cfg, Path(tempfile.mkdtemp()), stage="ppo", run_name="bench", val_every=shape.iterations,
                            checkpoint_every=shape.iterations + 1, log_every_n_steps=1, callbacks=[recorder])
    started = time.perf_counter()
    with precision.autocast(cfg):  # as pipeline.ensure runs every stage
        trainer.fit(module)
    seconds = time.perf_counter() - started
    first = recorder.rows[0]
    return {"seconds_per_iteration": seconds / shape.iterations,
            "first_ratio_abs_dev": first["ppo/first_ratio_abs_dev"],
            "first_ratio_max_dev": first["ppo/first_ratio_max_dev"], "kl_iteration0": first["kl/sequence"],
            "phases": {k: v / shape.iterations for k, v in module.phase_seconds.items()}}


def ppo_iterations(shape: Shape, seeds) -> Dict[str, object]:
    """Both ppo.rollout_logprobs settings on the first seed (numerics), the default (auto) on the rest; the timing
    compares the defaults: generation for fp32, forward for bf16-mixed (it samples from the bf16 copy)."""
    runs: Dict[str, List[Dict[str, float]]] = {}
    default = {side: rollout_logprobs_for("auto", side == "bf16-mixed") for side in SIDES}
    for seed in seeds:  # sides alternate
        for logprobs in ("generation", "forward") if seed == seeds[0] else ("auto",):
            for side in SIDES:
                resolved = default[side] if logprobs == "auto" else logprobs
                runs.setdefault(f"{side}/{resolved}", []).append(ppo_run(shape, side, seed, resolved))
    timing = {side: statistics.median(r["seconds_per_iteration"] for r in runs[f"{side}/{default[side]}"])
              for side in SIDES}
    return {"runs": runs, "seconds_per_iteration": timing, "speedup": timing["32-true"] / timing["bf16-mixed"],
            "rollout_logprobs": default}


def widths(repeats: int) -> Dict[str, float]:
    out = {}
    for hidden, mlp, layers, heads in WIDTHS:
        config = LlamaConfig(hidden_size=hidden, intermediate_size=mlp, num_hidden_layers=layers,
                             num_attention_heads=heads, num_key_value_heads=heads, vocab_size=1000,
                             max_position_embeddings=256)
        fns = {}
        for side in SIDES:
            torch.manual_seed(0)
            model = AutoModelForCausalLM.from_config(config)
            opt = adamw(model.parameters(), 1e-4, 0.0)
            ids = torch.randint(0, 1000, (64, 40))

            def step(model=model, opt=opt, ids=ids, side=side):
                with computing(side):
                    loss = model(input_ids=ids, labels=ids).loss
                opt.zero_grad()
                loss.backward()
                opt.step()
            fns[side] = step
        seconds = interleaved_medians(fns, repeats)
        out[str(hidden)] = seconds["32-true"] / seconds["bf16-mixed"]
    return out


PARTS = ("rm_training", "judge_scoring", "rm_evaluation", "sampling", "ppo_update", "ppo_iteration", "widths")


def main() -> None:
    args = arguments(__doc__.splitlines()[0], extra=lambda parser: parser.add_argument(
        "--parts", nargs="+", choices=PARTS, default=None,
        help="measure only these (the others are kept from the existing report, each row being its own run)"))
    real = args.model != "tiny"
    n = args.n or (16 if real else 256)
    data = Data(args.model, max(n, 64))
    shape = Shape(args.model)
    parts = set(args.parts or PARTS) - ({"widths"} if real else set())
    saved = args.out / f"{report_name('precision', args)}.json"
    result: Dict[str, object] = json.loads(saved.read_text()) if args.parts and saved.exists() else {}
    result.update({"model": args.model, "native_bf16": precision.native_bf16("cpu"),
                   "cpu_capability": torch.backends.cpu.get_cpu_capability()})
    measures = {"rm_training": lambda: rm_training(data, args.repeats, 8 if real else 32),
                "judge_scoring": lambda: scoring(data, GenerativeReward, args.repeats, n),
                "rm_evaluation": lambda: scoring(data, BTReward, args.repeats, n),
                "sampling": lambda: {str(b): sampling(data, args.repeats, b, RESPONSE_TOKENS if real else 20)
                                     for b in (16, 64)},
                "ppo_update": lambda: update_flops(data, args.repeats, 8 if real else 32),
                "ppo_iteration": lambda: ppo_iterations(shape, (0, 1)),
                "widths": lambda: widths(args.repeats)}
    for part in PARTS:
        if part in parts:
            result[part] = measures[part]()
            result.setdefault("measured_at", {})[part] = time.strftime("%Y-%m-%d %H:%M")
    fmt = lambda x: f"{x:.2f}x"  # noqa: E731
    rows = [["BT RM training (pairs/s)", *(f"{result['rm_training'][f'{s}_per_s']:.2f}" for s in SIDES),
             fmt(result["rm_training"]["speedup"]), "1.8x"],
            ["judge scoring, both orders (pairs/s)",
             *(f"{result['judge_scoring'][f'{s}_per_s']:.2f}" for s in SIDES), fmt(result["judge_scoring"]["speedup"]),
             "1.8x"],
            ["RM evaluation, BT (pairs/s)", *(f"{result['rm_evaluation'][f'{s}_per_s']:.2f}" for s in SIDES),
             fmt(result["rm_evaluation"]["speedup"]), "1.5x"]]
    for b, s in result["sampling"].items():
        rows.append([f"sampling, batch {b} (new tokens/s; fp32 = ours, HF generate fp32 "
                     f"{s['hf_fp32_new_tokens_per_s']:.0f})", f"{s['ours_fp32_new_tokens_per_s']:.0f}",
                     f"{s['ours_bf16_new_tokens_per_s']:.0f}",
                     f"{fmt(s['speedup_vs_ours_fp32'])} ({fmt(s['speedup_vs_hf_fp32'])} vs HF)", "1.6x"])
    u = result["ppo_update"]
    rows.append(["PPO update (GFLOP/s; share of the same precision's matmul peak)",
                 *(f"{u[f'{s}_update_gflops']:.0f} ({u[f'{s}_fraction_of_peak']:.0%} of {u[f'{s}_peak_gflops']:.0f})"
                   for s in SIDES), fmt(u["speedup"]), ">= 60% of bf16 peak"])
    it = result["ppo_iteration"]
    rows.append([f"PPO iteration (s; rollout_logprobs {' / '.join(it['rollout_logprobs'][s] for s in SIDES)})",
                 *(f"{it['seconds_per_iteration'][s]:.2f}" for s in SIDES),
                 fmt(it["speedup"]), "1.8x"])
    for logprobs in ("generation", "forward"):
        for label, key, agg, form in (("mean abs(ratio - 1), first minibatch", "first_ratio_abs_dev", statistics.mean,
                                       "{:.2e}"),
                                      ("max abs(ratio - 1), first minibatch", "first_ratio_max_dev", max, "{:.2e}"),
                                      ("KL to the reference at iteration 0 (nats / response)", "kl_iteration0",
                                       statistics.mean, "{:+.4f}")):
            rows.append([f"numerics, rollout_logprobs={logprobs}: {label}",
                         *(form.format(agg(r[key] for r in it["runs"][f"{side}/{logprobs}"])) for side in SIDES),
                         "", ""])
    if "widths" in result:
        rows.append(["training step speed-up by model width (hidden: bf16 / fp32)",
                     ", ".join(f"{w}: {v:.2f}x" for w, v in result["widths"].items()), "", "", "> 1 from 256"])
    write_report(args.out, report_name("precision", args), result, rows,
                 ["measure", "fp32 (32-true)", "bf16-mixed", "bf16 speed-up", "target"],
                 f"{'SmolLM2-135M-Instruct on HH-RLHF rows' if real else 'Default tiny model on digits rows'}, "
                 f"{torch.get_num_threads()} threads, CPU capability {result['cpu_capability']}, native bf16 "
                 f"{'yes' if result['native_bf16'] else 'no'}; medians of {args.repeats} alternating repetitions "
                 f"(PPO: {shape.iterations} iterations of {shape.rollout} prompts per run, 2 runs a side).")


if __name__ == "__main__":
    main()
