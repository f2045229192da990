"""Numeric precision of a stage: which dtype its forwards compute in, and what its frozen models are stored in.

`trainer.precision` is one of PRECISIONS or `auto`. Every forward of a stage follows it (training, evaluation,
sampling, scoring: `pipeline.ensure` runs the whole stage under `autocast`, and Lightning's plugin runs the
training step under the same autocast):

* trained models keep fp32 master weights (model.dtype) and compute under bf16 autocast;
* frozen models (the RM inside PPO, the evaluation judge, the pairs sampler) are loaded in bf16, so no weight is
  cast again on every forward. PPO's reference is the exception: it computes as the policy does (fp32 weights
  under autocast), so the KL to it starts at exactly 0 (stages/ppo.build_reference);
* sampling runs on bf16 weights (models/sampling.py keeps a bf16 copy of a trained policy).

`auto` is bf16-mixed where the hardware has native bf16 dot products and bf16 pays for the model, else 32-true.
Measured on an AMD EPYC (Zen 4, avx512_bf16) with torch 2.13, a Llama-style forward + backward + AdamW step under
bf16 autocast against fp32 (benchmarks/bench_precision.py, `--widths`): hidden 128 (the tiny default, 4 layers,
64 x 40 tokens) 0.69x -- slower, its matmuls are too small to amortise the casts -- hidden 256 1.48x, 384 1.53x,
576 (SmolLM2's width) 1.69x. So on CPU `auto` takes bf16 from BF16_MIN_HIDDEN up. On a GPU with bf16 every width
takes it.

The resolved precision is part of every model-computing artifact's key (pipeline.stage_key): fp32 and bf16 runs
of one config are two artifacts, and `auto` shares artifacts with the setting it resolves to.
"""

from __future__ import annotations

import json
import logging
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterator, Optional

import torch
from omegaconf import DictConfig

from pairwise_rl.hardware import cpu_flags  # noqa: F401 -- read here, and patched here by the tests
from pairwise_rl.registry import Registry

log = logging.getLogger(__name__)

AUTO = "auto"
BF16_MIN_HIDDEN = 256  # CPU: the smallest model width measured to train faster under bf16 (module docstring)
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo flags of native bf16 dot-product instructions


@dataclass(frozen=True)
class Precision:
    name: str
    lightning: str                          # Lightning's precision string for the Trainer
    autocast_dtype: Optional[torch.dtype]   # the compute dtype of every forward; None: the weights' own
    frozen_dtype: Optional[str]             # dtype frozen models are loaded in; None: model.dtype

    @property
    def bf16(self) -> bool:
        return self.autocast_dtype == torch.bfloat16


PRECISIONS: Registry[Precision] = Registry("trainer.precision")
PRECISIONS.register("32-true")(Precision("32-true", "32-true", None, None))
PRECISIONS.register("bf16-mixed")(Precision("bf16-mixed", "bf16-mixed", torch.bfloat16, "bfloat16"))


def choices() -> list[str]:
    return [AUTO, *PRECISIONS.names()]


def native_bf16(device_type: str) -> bool:
    """Whether this machine multiplies bf16 natively: a CUDA device that supports bf16, or a CPU reporting
    avx512_bf16 / amx_bf16 (and torch dispatching to its AVX-512 kernels)."""
    if device_type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    capability = torch.backends.cpu.get_cpu_capability()
    return any(flag in cpu_flags() for flag in CPU_BF16_FLAGS) and capability.startswith(("AVX512", "AMX"))


def model_width(model_cfg: DictConfig) -> Optional[int]:
    """The hidden size of the configured model: the tiny config's, or a local checkpoint's config.json; None
    when it cannot be known without loading (a hub id)."""
    if model_cfg.name_or_path is None:
        return int(model_cfg.tiny.hidden_size)
    from pairwise_rl.models.factory import weights_source

    config = Path(str(weights_source(model_cfg))) / "config.json"
    if not config.is_file():
        return None
    data = json.loads(config.read_text())
    width = data.get("hidden_size", data.get("n_embd"))
    return None if width is None else int(width)


def _device_type(trainer: DictConfig) -> str:
    from pairwise_rl.distributed import compute_device

    return compute_device(trainer).type


def auto_choice(device_type: str, width: Optional[int], native: bool) -> str:
    """What `auto` resolves to. Pure: the tests check it for every case."""
    if not native:
        return "32-true"
    if device_type == "cpu" and width is not None and width < BF16_MIN_HIDDEN:
        return "32-true"
    return "bf16-mixed"


def resolve(cfg: DictConfig) -> Precision:
    """The concrete precision of this config (auto decided for this machine and model)."""
    requested = cfg.trainer.precision
    if requested != AUTO:
        return PRECISIONS.get(requested)
    device_type = _device_type(cfg.trainer)
    return PRECISIONS.get(_auto(device_type, model_width(cfg.model), native_bf16(device_type)))


@lru_cache(maxsize=None)
def _auto(device_type: str, width: Optional[int], native: bool) -> str:
    choice = auto_choice(device_type, width, native)
    log.info("trainer.precision=auto -> %s (%s: native bf16 %s; model width %s; bf16 pays on CPU from width %d)",
             choice, device_type, "yes" if native else "no", width if width is not None else "unknown",
             BF16_MIN_HIDDEN)
    return choice


def computes_below_fp32(cfg: DictConfig) -> bool:
    """Whether the trained models compute in less than fp32: under bf16 autocast, or in bf16 / fp16 weights."""
    return resolve(cfg).autocast_dtype is not None or cfg.model.dtype != "float32"


def frozen_dtype(cfg: DictConfig) -> str:
    """The dtype a frozen model (the RM inside PPO, the judge, the pairs sampler) is loaded in; PPO's reference
    computes as the policy does instead (stages/ppo.build_reference)."""
    return resolve(cfg).frozen_dtype or cfg.model.dtype


@contextmanager
def autocast(cfg: DictConfig) -> Iterator[None]:
    """Every forward inside computes in the stage's precision (a no-op for 32-true)."""
    dtype = resolve(cfg).autocast_dtype
    with nullcontext() if dtype is None else torch.autocast(_device_type(cfg.trainer), dtype=dtype):
        yield


def autocast_active(device_type: str) -> Optional[torch.dtype]:
    """The dtype autocast computes in on this device right now, or None when it is off."""
    if not torch.is_autocast_enabled(device_type):
        return None
    return torch.get_autocast_dtype(device_type)
