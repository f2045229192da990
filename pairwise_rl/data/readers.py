"""Preference datasets -> canonical `Preference` records, with every bad row named or counted.

Sources: a local file (.jsonl, .jsonl.gz, .json lines, .parquet) or a hub dataset id (through `datasets`).
Formats (one registry, `data.source`):
  hh_rlhf        Anthropic HH-RLHF: `chosen` / `rejected` are whole transcripts; the shared prompt is split off at
                 the last "\n\nAssistant:" turn the two have in common.
  ultrafeedback  UltraFeedback-binarized style: `prompt`, and `chosen` / `rejected` as message lists (the last
                 assistant message is the response) or plain strings.
  jsonl          generic rows with a field mapping (data.fields): prompt + chosen + rejected, or prompt +
                 response_a + response_b + preference, read by data.fields.preference_format: probability
                 (P(a preferred) in [0, 1], or "a" / "b"), alpaca_eval ([1, 2], 1 = a preferred) or arena
                 (model_a / model_b / tie). Ties are bad rows (skipped and counted); a label strictly between
                 0 and 1 is kept as a soft label (Preference.label), which the RMs train on as a soft target.

A row that cannot become a record raises `DataError` naming file, row and field, unless data.on_bad_row=skip,
which skips it and counts it by reason. Nothing is dropped without a count.
"""

from __future__ import annotations

import codecs
import gzip
import hashlib
import json
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Tuple

from pairwise_rl.data.records import Preference
from pairwise_rl.errors import DataSourceError, UserError
from pairwise_rl.registry import Registry

HH_TURN = "\n\nAssistant:"
DEFAULT_FIELDS = {"prompt": "prompt", "chosen": "chosen", "rejected": "rejected", "response_a": None,
                  "response_b": None, "preference": None, "preference_format": "probability"}
BAD_ROW_POLICIES = ("error", "skip")


class DataError(UserError, ValueError):
    """A row that cannot be read; the message names the source, the row (1-based) and the field."""

    fix = "correct the row, or set data.on_bad_row=skip to drop bad rows (each skip is counted and logged)"

    def __init__(self, source: str, row: int, field_name: Optional[str], problem: str):
        where = f"{source}, row {row}" + (f", field {field_name!r}" if field_name else "")
        super().__init__(f"{where}: {problem}")
        self.source, self.row, self.field, self.problem = source, row, field_name, problem


class RowProblem(ValueError):
    """Raised by a format parser; the reader adds the source and row."""

    def __init__(self, field_name: Optional[str], problem: str, reason: str):
        super().__init__(problem)
        self.field, self.problem, self.reason = field_name, problem, reason


@dataclass
class ReadReport:
    """What reading a source did: rows seen, records kept, rows skipped by reason."""

    source: str
    rows: int = 0
    kept: int = 0
    skipped: Counter = field(default_factory=Counter)    # reason -> rows skipped
    truncated: Counter = field(default_factory=Counter)  # field -> rows whose field was truncated (kept)

    def as_metrics(self, prefix: str = "data") -> Dict[str, float]:
        out = {f"{prefix}/rows": float(self.rows), f"{prefix}/kept": float(self.kept)}
        out.update({f"{prefix}/skipped/{reason}": float(n) for reason, n in sorted(self.skipped.items())})
        out.update({f"{prefix}/truncated/{name}": float(n) for name, n in sorted(self.truncated.items())})
        return out


# ------------------------------------------------------------------------------------------------ raw rows
def _jsonl_rows(path: Path) -> Iterator[Tuple[int, Any]]:
    """(line number, parsed row or RowProblem): bytes are decoded strictly so bad encodings are caught per row.

    A UTF-8 byte-order mark at the start of the file (Windows tools write one) is not part of the first row. A file
    that cannot be read as a whole (not gzip though named .gz, truncated, unreadable) is a DataSourceError naming
    the file and the last row read."""
    number = 0
    try:
        for number, raw in _lines(path):
            if number == 1 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8):]
            if not raw.strip():
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                yield number, RowProblem(None, f"not valid UTF-8 ({error.reason} at byte {error.start})", "not_utf8")
                continue
            try:
                yield number, json.loads(text)
            except json.JSONDecodeError as error:
                yield number, RowProblem(None, f"malformed JSON ({error.msg} at column {error.colno})",
                                         "malformed_json")
    except (OSError, EOFError, zlib.error) as error:
        kind = "gzip " if path.suffix == ".gz" else ""
        where = f"after row {number}" if number else "before its first row"
        raise DataSourceError(f"data.path={str(path)!r}: cannot be read as a {kind}file {where} "
                              f"({type(error).__name__}: {error})").with_fix(
            "check the file: `gzip -t` for .gz files; re-export or re-download it") from error


def _lines(path: Path) -> Iterator[Tuple[int, bytes]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        yield from enumerate(handle, start=1)


def _dataset_rows(path_or_id: str, split: str, parquet: bool) -> Iterator[Tuple[int, Any]]:
    import datasets  # imported lazily: it is slow to import and only non-digits sources need it

    try:
        if parquet:
            table = datasets.load_dataset("parquet", data_files=path_or_id, split="train")
        else:
            table = datasets.load_dataset(path_or_id, split=split)
    except Exception as error:  # noqa: BLE001 -- corrupt file, offline, unknown id, no such split: one message
        reason = " ".join(f"{type(error).__name__}: {error}".split())
        if parquet:
            raise DataSourceError(f"data.path={path_or_id!r}: cannot be read as a parquet file ({reason})").with_fix(
                "check the file (e.g. `python -c \"import pyarrow.parquet as p; p.read_table('FILE')\"`); re-export "
                "or re-download it") from error
        raise DataSourceError(f"data.path={path_or_id!r} is not a local file and could not be loaded from the hub "
                              f"({reason})").with_fix(
            f"without hub access, download it elsewhere (`huggingface-cli download --repo-type dataset "
            f"{path_or_id}`), copy the .jsonl/.parquet file here and set data.path=/path/to/that/file") from error
    for number, row in enumerate(table, start=1):
        yield number, row


def raw_rows(path_or_id: str, split: str = "train") -> Iterator[Tuple[int, Any]]:
    path = Path(path_or_id)
    if path.is_file():
        if path.suffix == ".parquet":
            return _dataset_rows(str(path), split, parquet=True)
        return _jsonl_rows(path)
    if path.suffix in {".jsonl", ".gz", ".json", ".parquet"} or path_or_id.startswith((".", "/")):
        raise DataSourceError(f"data.path={path_or_id!r}: no such file").with_fix(
            "give the path of a .jsonl, .jsonl.gz or .parquet file (relative paths start at the directory you run "
            "from; ${paths.root_dir} is the repository)")
    return _dataset_rows(path_or_id, split, parquet=False)


# ------------------------------------------------------------------------------------------------ formats
def _text(row: Mapping[str, Any], name: str) -> str:
    if name not in row or row[name] is None:
        raise RowProblem(name, "missing", "missing_field")
    value = row[name]
    if not isinstance(value, str):
        raise RowProblem(name, f"expected a string, got {type(value).__name__}", "wrong_type")
    if not value.strip():
        raise RowProblem(name, "empty", "empty_field")
    return value


def split_hh_transcripts(chosen: str, rejected: str) -> Tuple[str, str, str]:
    """(prompt, chosen response, rejected response): the prompt ends with the last shared Assistant turn."""
    shared = chosen[:next((i for i, (a, b) in enumerate(zip(chosen, rejected)) if a != b),
                          min(len(chosen), len(rejected)))]
    cut = shared.rfind(HH_TURN)
    if cut < 0:
        raise RowProblem("chosen", f"chosen and rejected share no {HH_TURN!r} turn to split the prompt at",
                         "no_shared_prompt")
    prompt = chosen[:cut + len(HH_TURN)]
    return prompt, chosen[len(prompt):].strip(), rejected[len(prompt):].strip()


PREFERENCE_FORMATS: Registry[Callable[[Mapping[str, Any], Mapping[str, Optional[str]]], Preference]] = Registry(
    "preference data format")


@PREFERENCE_FORMATS.register("hh_rlhf")
def hh_rlhf_row(row: Mapping[str, Any], fields: Mapping[str, Optional[str]]) -> Preference:
    prompt, chosen, rejected = split_hh_transcripts(_text(row, "chosen"), _text(row, "rejected"))
    for name, value in (("chosen", chosen), ("rejected", rejected)):
        if not value:
            raise RowProblem(name, "empty response after the shared prompt", "empty_field")
    return Preference(prompt, chosen, rejected, task="hh_rlhf")


def _last_assistant(row: Mapping[str, Any], name: str) -> str:
    if isinstance(row.get(name), str):
        return _text(row, name)
    messages = row.get(name)
    if not isinstance(messages, list):
        raise RowProblem(name, "missing" if messages is None else "expected a message list or a string",
                         "missing_field" if messages is None else "wrong_type")
    replies = [m.get("content") for m in messages if isinstance(m, dict) and m.get("role") == "assistant"]
    if not replies or not isinstance(replies[-1], str) or not replies[-1].strip():
        raise RowProblem(name, "no non-empty assistant message", "empty_field")
    return replies[-1]


@PREFERENCE_FORMATS.register("ultrafeedback")
def ultrafeedback_row(row: Mapping[str, Any], fields: Mapping[str, Optional[str]]) -> Preference:
    return Preference(_text(row, "prompt"), _last_assistant(row, "chosen"), _last_assistant(row, "rejected"),
                      task="ultrafeedback")


PREFERENCE_LABELS: Registry[Callable[[Any, str], float]] = Registry("preference label format")


@PREFERENCE_LABELS.register("probability")
def _probability_label(value: Any, name: str) -> float:
    """P(response_a preferred) in [0, 1], or "a" / "b"."""
    if isinstance(value, str) and value.strip().lower() in {"a", "b"}:
        return 1.0 if value.strip().lower() == "a" else 0.0
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RowProblem(name, f"expected P(a preferred) in [0, 1] or 'a' / 'b', got {value!r}",
                         "missing_field" if value is None else "wrong_type")
    if not 0.0 <= float(value) <= 1.0:
        raise RowProblem(name, f"must be in [0, 1], got {value}", "out_of_range")
    return float(value)


@PREFERENCE_LABELS.register("alpaca_eval")
def _alpaca_eval_label(value: Any, name: str) -> float:
    """AlpacaEval annotations: a float in [1, 2], 1 = the first output preferred, 2 = the second; 1.5 a tie."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RowProblem(name, f"expected an AlpacaEval preference in [1, 2], got {value!r}",
                         "missing_field" if value is None else "wrong_type")
    if not 1.0 <= float(value) <= 2.0:
        raise RowProblem(name, f"must be in [1, 2], got {value}", "out_of_range")
    return 2.0 - float(value)


ARENA_WINNERS = {"model_a": 1.0, "model_b": 0.0}


@PREFERENCE_LABELS.register("arena")
def _arena_label(value: Any, name: str) -> float:
    """Arena-style winners: model_a / model_b, and tie or tie (bothbad) (a tie, skipped and counted)."""
    if not isinstance(value, str):
        raise RowProblem(name, f"expected model_a / model_b / tie, got {value!r}",
                         "missing_field" if value is None else "wrong_type")
    winner = value.strip().lower()
    if winner.startswith("tie"):
        return 0.5
    if winner not in ARENA_WINNERS:
        raise RowProblem(name, f"expected model_a / model_b / tie, got {value!r}", "out_of_range")
    return ARENA_WINNERS[winner]


@PREFERENCE_FORMATS.register("jsonl")
def generic_row(row: Mapping[str, Any], fields: Mapping[str, Optional[str]]) -> Preference:
    prompt = _text(row, fields["prompt"])
    if fields.get("preference"):
        a, b = _text(row, fields["response_a"]), _text(row, fields["response_b"])
        label_format = PREFERENCE_LABELS.get(fields.get("preference_format") or "probability")
        p = label_format(row.get(fields["preference"]), fields["preference"])
        if p == 0.5:
            raise RowProblem(fields["preference"], "a tie carries no preference", "tie")
        chosen, rejected, p_chosen = (a, b, p) if p > 0.5 else (b, a, 1.0 - p)
        return Preference(prompt, chosen, rejected, probability=p_chosen, label=p_chosen if p_chosen < 1 else None)
    return Preference(prompt, _text(row, fields["chosen"]), _text(row, fields["rejected"]))


# ------------------------------------------------------------------------------------------------ reading
def read_records(path_or_id: str, parse: Callable[[Mapping[str, Any]], Any], on_bad_row: str = "error",
                 split: str = "train", max_rows: Optional[int] = None) -> Tuple[List[Any], List[int], ReadReport]:
    """Each row through `parse` (which raises RowProblem for a bad row): records, the row number each came from,
    and the report. on_bad_row: error (raise DataError naming file, row, field) | skip (count by reason)."""
    if on_bad_row not in BAD_ROW_POLICIES:
        raise ValueError(f"on_bad_row must be one of {BAD_ROW_POLICIES}, got {on_bad_row!r}")
    report = ReadReport(str(path_or_id))
    records, rows = [], []
    for number, row in raw_rows(str(path_or_id), split):
        if max_rows is not None and report.rows >= max_rows:
            break
        report.rows += 1
        try:
            if isinstance(row, RowProblem):
                raise row
            if not isinstance(row, Mapping):
                raise RowProblem(None, f"expected a JSON object, got {type(row).__name__}", "not_an_object")
            record = parse(row)
        except RowProblem as problem:
            if on_bad_row == "error":
                raise DataError(str(path_or_id), number, problem.field, problem.problem) from None
            report.skipped[problem.reason] += 1
            continue
        records.append(record)
        rows.append(number)
    report.kept = len(records)
    return records, rows, report


def read_preferences(path_or_id: str, source: str, fields: Optional[Mapping[str, Optional[str]]] = None,
                     on_bad_row: str = "error", split: str = "train",
                     max_rows: Optional[int] = None) -> Tuple[List[Preference], List[int], ReadReport]:
    """Preference records of a file or hub dataset in format `source`; see read_records."""
    parse_format = PREFERENCE_FORMATS.get(source)
    fields = {**DEFAULT_FIELDS, **(fields or {})}

    def parse(row: Mapping[str, Any]) -> Preference:
        record = parse_format(row, fields)
        if record.chosen == record.rejected:
            raise RowProblem("rejected", "identical to chosen (no preference to learn)", "identical_pair")
        return record

    return read_records(path_or_id, parse, on_bad_row, split, max_rows)


# ------------------------------------------------------------------------------------------------ lengths
OVERLONG_POLICIES = ("truncate", "skip", "error")


def apply_length_policy(records: List[Preference], rows: List[int], count_tokens: Callable[[str], int],
                        cut: Callable[[str, int, str], str], max_prompt_tokens: int, max_response_tokens: int,
                        policy: str, report: ReadReport) -> List[Preference]:
    """Over-long prompts / responses: truncate (prompts keep their end, responses their start; counted), skip
    (counted) or error (naming the row and field). The counts land in report.skipped / report.truncated."""
    if policy not in OVERLONG_POLICIES:
        raise ValueError(f"overlong policy must be one of {OVERLONG_POLICIES}, got {policy!r}")
    kept: List[Preference] = []
    for record, number in zip(records, rows):
        limits = {"prompt": max_prompt_tokens, "chosen": max_response_tokens, "rejected": max_response_tokens}
        too_long = {name: n for name in limits if (n := count_tokens(getattr(record, name))) > limits[name]}
        if not too_long:
            kept.append(record)
            continue
        if policy == "error":
            name, n = next(iter(too_long.items()))
            raise DataError(report.source, number, name, f"{n} tokens > the limit of {limits[name]} "
                            f"(data.max_{'prompt' if name == 'prompt' else 'response'}_tokens; or data.overlong="
                            "truncate | skip)")
        if policy == "skip":
            report.skipped["overlong"] += 1
            continue
        values = {name: cut(getattr(record, name), limits[name], "end" if name == "prompt" else "start")
                  for name in too_long}
        for name in too_long:
            report.truncated[name] += 1
        record = Preference(**{**record.to_dict(), **values})
        if record.chosen == record.rejected:  # truncation made the responses identical: no preference left
            report.skipped["identical_after_truncation"] += 1
            continue
        kept.append(record)
    report.kept = len(kept)
    return kept


def unit_hash(text: str) -> float:
    """A stable number in [0, 1) from a text: splits by it are the same on every machine and run."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big") / 2 ** 64


def split_of_prompt(prompt: str, val_fraction: float, test_fraction: float) -> str:
    """train / val / test for one prompt, by a stable hash of its text."""
    u = unit_hash(prompt)
    return "test" if u < test_fraction else "val" if u < test_fraction + val_fraction else "train"


def split_by_prompt(records: List[Preference], val_fraction: float,
                    test_fraction: float) -> Dict[str, List[Preference]]:
    """train / val / test by a stable hash of the prompt: all comparisons of one prompt land in one split."""
    splits: Dict[str, List[Preference]] = {"train": [], "val": [], "test": []}
    for record in records:
        splits[split_of_prompt(record.prompt, val_fraction, test_fraction)].append(record)
    return splits
