"""Prompt-only files for RL: one JSON object per row with a prompt and, optionally, a reference response.

    pairwise-rl stage=ppo data=hh_rlhf data.rl_prompts.path=prompts.jsonl data.rl_prompts.reference=answer

Rows go through the same checks as preference rows: a bad row raises `DataError` naming file, row and field, or
with on_bad_row=skip is skipped and counted by reason.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

from pairwise_rl.data.readers import BAD_ROW_POLICIES, DataError, ReadReport, RowProblem, _text, raw_rows
from pairwise_rl.data.records import Prompt


def read_prompts(path_or_id: str, prompt_field: str = "prompt", reference_field: Optional[str] = None,
                 on_bad_row: str = "error", split: str = "train",
                 max_rows: Optional[int] = None) -> Tuple[List[Prompt], ReadReport]:
    """Prompt records (with `reference` when reference_field is given) and the read report."""
    if on_bad_row not in BAD_ROW_POLICIES:
        raise ValueError(f"on_bad_row must be one of {BAD_ROW_POLICIES}, got {on_bad_row!r}")
    report = ReadReport(str(path_or_id))
    records: List[Prompt] = []
    for number, row in raw_rows(str(path_or_id), split):
        if max_rows is not None and report.rows >= max_rows:
            break
        report.rows += 1
        try:
            if isinstance(row, RowProblem):
                raise row
            if not isinstance(row, dict):
                raise RowProblem(None, f"expected a JSON object, got {type(row).__name__}", "not_an_object")
            reference = _text(row, reference_field) if reference_field else None
            records.append(Prompt(_text(row, prompt_field), reference, task="prompts"))
        except RowProblem as problem:
            if on_bad_row == "error":
                raise DataError(str(path_or_id), number, problem.field, problem.problem) from None
            report.skipped[problem.reason] += 1
    report.kept = len(records)
    return records, report
