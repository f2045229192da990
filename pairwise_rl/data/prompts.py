"""Prompt-only files for RL: one JSON object per row with a prompt and, optionally, a reference response.

    pairwise-rl stage=ppo data=hh_rlhf data.rl_prompts.path=prompts.jsonl data.rl_prompts.reference=answer

Rows go through the same checks as preference rows: a bad row raises `DataError` naming file, row and field, or
with on_bad_row=skip is skipped and counted by reason.
"""

from __future__ import annotations

from typing import Any, List, Mapping, Optional, Tuple

from pairwise_rl.data.readers import ReadReport, _text, read_records
from pairwise_rl.data.records import Prompt


def read_prompts(path_or_id: str, prompt_field: str = "prompt", reference_field: Optional[str] = None,
                 on_bad_row: str = "error", split: str = "train",
                 max_rows: Optional[int] = None) -> Tuple[List[Prompt], ReadReport]:
    """Prompt records (with `reference` when reference_field is given) and the read report."""

    def parse(row: Mapping[str, Any]) -> Prompt:
        reference = _text(row, reference_field) if reference_field else None
        return Prompt(_text(row, prompt_field), reference, task="prompts")

    records, _, report = read_records(path_or_id, parse, on_bad_row, split, max_rows)
    return records, report
