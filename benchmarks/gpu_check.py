"""`make gpu-check`: every stage in bf16 on one CUDA GPU, and what each kind of work achieves there (<= 8 min).

A GPU machine may have no copy of the real weights and no package index, so this uses what travels with the repo:
the tiny models, and the SmolLM2-135M architecture (30 blocks, width 576, 9 heads / 3 KV heads, vocabulary 49,152)
at random weights with the committed SmolLM2 tokenizer (tests/fixtures/smollm2_tokenizer). Three parts:

1. throughput on the SmolLM2 architecture, bf16 autocast over fp32 master weights (trained work) or bf16 weights
   (frozen work), as `trainer.precision=bf16-mixed` runs it: SFT / RM training step (forward, backward, AdamW),
   judge scoring (both orders), sampling, and the PPO update. Tokens/s and model-FLOPs utilisation: FLOPs counted
   by FlopCounterMode for the executed ops, over the bf16 matmul peak measured in the same run (and over the
   nominal dense peak of the card, when it is an H100 / H200);
2. the pipeline end to end through the CLI (`experiment=pairwise_vs_bt debug=fast`: SFT, pairs, both RMs, both PPO
   setups, the independent evaluation) with `trainer=gpu` (precision auto -> bf16-mixed), on the tiny model and
   on the SmolLM2 architecture; seconds per stage and the precision each artifact recorded;
3. the same tiny pipeline with `trainer=fsdp trainer.devices=1 trainer.accelerator=gpu` (FSDP2 on one device).

Writes gpu_check.json / .md to --out ($OUT on the device machine, else benchmarks/results). Needs torch, lightning,
transformers and the wheels `make gpu-wheels` downloads (hydra-core, omegaconf, antlr4); CI never runs it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List

import torch
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
TOKENIZER = ROOT / "tests" / "fixtures" / "smollm2_tokenizer"
SMOLLM2 = dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
               num_key_value_heads=3, max_position_embeddings=2048, rms_norm_eps=1e-5, rope_theta=100000.0,
               tie_word_embeddings=True, vocab_size=49152)
NOMINAL_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0}  # dense bf16 tensor-core peak of the SXM parts


def timed(fn: Callable[[], object], device: torch.device, repeats: int = 5) -> float:
    """Median seconds of fn after a warm-up, synchronising the device around each call."""
    fn()
    seconds: List[float] = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def flops_of(fn: Callable[[], object]) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def smollm2_dir(out: Path) -> str:
    """The SmolLM2-135M architecture at random weights (seeded), saved like a stage saves a model."""
    from transformers import AutoModelForCausalLM, LlamaConfig

    from pairwise_rl.models.factory import load_tokenizer

    tokenizer = load_tokenizer(str(TOKENIZER))
    config = LlamaConfig(**SMOLLM2, pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return str(out)


FULL = {"batch": 32, "length": 512, "pairs": 64, "new_tokens": 128, "peak": 8192}
SMALL = {"batch": 2, "length": 64, "pairs": 4, "new_tokens": 4, "peak": 512}  # --small: a CPU try of the script


def throughput(model_dir: str, device: torch.device, size: Dict[str, int]) -> Dict[str, Dict[str, float]]:
    from pairwise_rl.algos.ppo import policy_loss, token_logprobs
    from pairwise_rl.models.factory import load_causal_lm, load_tokenizer
    from pairwise_rl.models.generation import generate
    from pairwise_rl.models.heads import causal_lm_loss, hidden_states, lm_head_logits
    from pairwise_rl.modules.optim import adamw
    from pairwise_rl.rewards.generative import GenerativeReward

    bf16 = torch.autocast(device.type, torch.bfloat16)
    n = size["peak"]
    a, b = (torch.randn(n, n, device=device, dtype=torch.bfloat16) for _ in range(2))
    peak = 2 * n ** 3 / timed(lambda: a @ b, device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    nominal = next((v * 1e12 for k, v in NOMINAL_BF16_TFLOPS.items() if k in name), None)
    tokenizer = load_tokenizer(model_dir)
    trained = load_causal_lm(model_dir).to(device).train()
    frozen = load_causal_lm(model_dir, "bfloat16").to(device).eval()
    opt = adamw(trained.parameters(), 1e-5, 0.0)
    batch, length, half = size["batch"], size["length"], size["length"] // 2
    ids = torch.randint(100, 40000, (batch, length), device=device)
    mask = torch.ones_like(ids)
    labels = ids.clone()

    def train_step():
        with bf16:
            loss = causal_lm_loss(trained, ids, mask, labels)
        opt.zero_grad()
        loss.backward()
        opt.step()

    def ppo_update():
        with bf16:
            logprobs = token_logprobs(lm_head_logits(trained, hidden_states(trained, ids, mask)[:, half - 1:-1]),
                                      ids[:, half:])
            loss, _ = policy_loss(logprobs, logprobs.detach() - 0.01, torch.ones_like(logprobs),
                                  torch.ones_like(logprobs), 0.2)
        opt.zero_grad()
        loss.backward()
        opt.step()

    judge = GenerativeReward(frozen, tokenizer, 256, 128, template="{prompt}\nA:{a}\nB:{b}\nBetter:",
                             verdict_tokens=["A", "B"], batch_size=64)
    words = tokenizer.decode(list(range(1000, 1300)))
    prompts, answers = [words[:900]] * size["pairs"], [words[900:1300]] * size["pairs"]

    def score():
        with bf16:
            judge.pair_probabilities(prompts, answers, answers[::-1])

    def sample():
        with bf16:
            return generate(frozen, tokenizer, prompts, max_new_tokens=size["new_tokens"], max_prompt_tokens=256,
                            generator_seed=0)

    rows: Dict[str, Dict[str, float]] = {}
    for stage, fn, tokens in (("SFT / RM training step (fwd + bwd + AdamW)", train_step, batch * length),
                              ("PPO update (policy, response half)", ppo_update, batch * length),
                              (f"judge scoring, both orders ({size['pairs']} pairs)", score, None),
                              (f"sampling ({size['pairs']} prompts, {size['new_tokens']} new tokens)", sample, None)):
        seconds = timed(fn, device, 3)
        flops = flops_of(fn)
        if tokens is None:
            if fn is sample:  # new tokens
                tokens = int(sample().response_mask.sum())
            else:  # tokens the judge reads: both orders of every pair
                tokens = int(judge._encode(prompts + prompts, answers + answers[::-1],
                                           answers[::-1] + answers)["attention_mask"].sum())
        rows[stage] = {"seconds": seconds, "tokens_per_s": tokens / seconds, "tflops": flops / seconds / 1e12,
                       "mfu_measured_peak": flops / seconds / peak,
                       **({"mfu_nominal": flops / seconds / nominal} if nominal else {})}
    rows[f"bf16 matmul {n}^3 (measured peak)"] = {"tflops": peak / 1e12}
    return rows


def cli(overrides: List[str], workdir: Path, env: Dict[str, str]) -> Dict[str, object]:
    """One pipeline through the real CLI; per stage: seconds and the precision its artifact recorded."""
    run_dir = workdir / f"run-{len(list(workdir.glob('run-*')))}"
    # a cache of its own: the strategy is not part of an artifact's key, so a shared cache would serve the fsdp run
    # the artifacts the single-device run built
    command = [sys.executable, "-m", "pairwise_rl.cli", *overrides, f"paths.cache_dir={run_dir / 'artifacts'}",
               f"hydra.run.dir={run_dir}", "logger=none", "trainer.progress_bar=none"]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        return {"ok": False, "seconds": wall, "error": (done.stdout + done.stderr)[-3000:]}
    result = json.loads((run_dir / "result.json").read_text())
    stages: Dict[str, Dict[str, object]] = {}
    for setup, paths in result["artifacts"].items():
        for stage, path in paths.items():
            complete = json.loads((Path(path) / "COMPLETE.json").read_text())
            stages[f"{setup}/{stage}"] = {"seconds": complete["seconds"], **complete.get("numerics", {})}
    return {"ok": True, "seconds": wall, "stages": stages,
            "gold": {name: row.get("gold (sampled)") for name, row in result["results"].items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or ROOT / "benchmarks" / "results"))
    parser.add_argument("--device", default="cuda", help="cuda; cpu only to try the script itself")
    parser.add_argument("--small", action="store_true", help="tiny shapes, to try the script on a CPU")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("gpu-check needs a CUDA device (none is visible); CI never runs it")
    accelerator = "gpu" if device.type == "cuda" else "cpu"
    workdir = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    model_dir = smollm2_dir(workdir / "smollm2-random")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    report: Dict[str, object] = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                                 "torch": torch.__version__}
    started = time.perf_counter()
    report["throughput_smollm2_arch"] = throughput(model_dir, device, SMALL if args.small else FULL)
    base = ["experiment=pairwise_vs_bt", "debug=fast", f"trainer.accelerator={accelerator}"]
    report["pipeline_tiny"] = cli([*base, "trainer=gpu" if accelerator == "gpu" else "trainer=cpu",
                                   f"trainer.accelerator={accelerator}"], workdir, env)
    report["pipeline_smollm2_arch"] = cli([*base, "trainer=gpu" if accelerator == "gpu" else "trainer=cpu",
                                           f"trainer.accelerator={accelerator}", "model=smollm2_135m_instruct",
                                           f"model.name_or_path={model_dir}", "model.fetch=null",
                                           "data.max_prompt_tokens=64", "data.max_response_tokens=24"], workdir, env)
    report["pipeline_tiny_fsdp_1_device"] = cli([*base, "trainer=fsdp", "trainer.devices=1",
                                                 f"trainer.accelerator={accelerator}"], workdir, env)
    report["seconds"] = time.perf_counter() - started
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_check.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [f"# gpu-check on {report['device']} (torch {report['torch']}), {report['seconds']:.0f} s", "",
             "| work (SmolLM2 architecture, bf16) | tokens/s | TFLOP/s | MFU (measured bf16 peak) | MFU (nominal) |",
             "|---|---|---|---|---|"]
    def percent(row: Dict[str, float], key: str) -> str:
        return f"{row[key]:.1%}" if key in row else "-"

    for stage, row in report["throughput_smollm2_arch"].items():
        tokens = f"{row['tokens_per_s']:,.0f}" if "tokens_per_s" in row else "-"
        lines.append(f"| {stage} | {tokens} | {row['tflops']:.1f} | {percent(row, 'mfu_measured_peak')} | "
                     f"{percent(row, 'mfu_nominal')} |")
    for part in ("pipeline_tiny", "pipeline_smollm2_arch", "pipeline_tiny_fsdp_1_device"):
        run = report[part]
        lines += ["", f"## {part}: {'ok' if run['ok'] else 'FAILED'} in {run['seconds']:.0f} s"]
        if not run["ok"]:
            lines += ["```", run["error"], "```"]
            continue
        lines += ["| artifact | seconds | precision | packing |", "|---|---|---|---|"]
        lines += [f"| {name} | {row['seconds']} | {row.get('precision')} | {row.get('packing')} |"
                  for name, row in run["stages"].items()]
        lines.append(f"\nheld-out gold (sampled): {run['gold']}")
    (args.out / "gpu_check.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    if not all(report[p]["ok"] for p in ("pipeline_tiny", "pipeline_smollm2_arch", "pipeline_tiny_fsdp_1_device")):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
