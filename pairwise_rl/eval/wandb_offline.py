"""Read an offline W&B run back from its `run-<id>.wandb` file, with no network and no login.

The file is W&B's transaction log: a 7-byte header (":W&B", magic, version), then LevelDB-log framed records in
32 KiB blocks, each record a `wandb_internal_pb2.Record` protobuf. Reading it back is how the tests check that a
run really logged its metrics, tags and config, and it lets a user inspect offline runs before `wandb sync`.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List

from wandb.proto import wandb_internal_pb2

FILE_HEADER = struct.Struct("<4sHB")   # ident, magic, version
RECORD_HEADER = struct.Struct("<IHB")  # checksum, length, type
BLOCK = 32 * 1024
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4
IDENT = b":W&B"


@dataclass
class OfflineRun:
    """What a run logged: config values, tags, history rows (one dict per `log` call) and the final summary."""

    run_id: str = ""
    name: str = ""
    group: str = ""
    tags: List[str] = field(default_factory=list)
    config: Dict[str, Any] = field(default_factory=dict)
    history: List[Dict[str, Any]] = field(default_factory=list)
    summary: Dict[str, Any] = field(default_factory=dict)

    def metric(self, key: str) -> List[Any]:
        return [row[key] for row in self.history if key in row]


def _payloads(data: bytes) -> Iterator[bytes]:
    """Reassemble record payloads from the block framing (a record may be split FIRST/MIDDLE*/LAST across blocks)."""
    ident, _, _ = FILE_HEADER.unpack_from(data, 0)
    if ident != IDENT:
        raise ValueError(f"not a W&B transaction log (header {ident!r})")
    pos, pending = FILE_HEADER.size, b""
    while pos + RECORD_HEADER.size <= len(data):
        left_in_block = BLOCK - pos % BLOCK
        if left_in_block < RECORD_HEADER.size:  # a block trailer too short for a header is zero padding
            pos += left_in_block
            continue
        _, length, kind = RECORD_HEADER.unpack_from(data, pos)
        if kind == 0 and length == 0:  # zero fill at the end of a block
            pos += left_in_block
            continue
        start = pos + RECORD_HEADER.size
        chunk = data[start:start + length]
        pos = start + length
        if kind == FULL:
            yield chunk
        elif kind == FIRST:
            pending = chunk
        elif kind == MIDDLE:
            pending += chunk
        elif kind == LAST:
            yield pending + chunk
            pending = b""
        else:
            raise ValueError(f"corrupt W&B log: record type {kind} at byte {pos}")


def _value(item) -> Any:
    return json.loads(item.value_json)


def _put(target: Dict[str, Any], item) -> None:
    """Set one logged item; W&B splits dict values (a table's file reference) into nested keys."""
    if item.key:
        target[item.key] = _value(item)
        return
    *parents, last = item.nested_key
    for name in parents:
        target = target.setdefault(name, {})
    target[last] = _value(item)


def _items(items) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for item in items:
        _put(out, item)
    return out


def read_offline_run(run_dir: str | Path) -> OfflineRun:
    """Parse `<run_dir>/run-*.wandb` (run_dir is a wandb/offline-run-... directory)."""
    files = sorted(Path(run_dir).glob("run-*.wandb"))
    if not files:
        raise FileNotFoundError(f"no run-*.wandb file in {run_dir}")
    run = OfflineRun()
    for payload in _payloads(files[0].read_bytes()):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(payload)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run.run_id, run.name, run.group = record.run.run_id, record.run.display_name, record.run.run_group
            run.tags = list(record.run.tags)
            run.config.update(_items(record.run.config.update))
        elif kind == "config":
            run.config.update(_items(record.config.update))
        elif kind == "history":
            run.history.append(_items(record.history.item))
        elif kind == "summary":
            run.summary.update(_items(record.summary.update))
    # W&B stores each config value as {"value": v} (plus its own "_wandb" entry).
    run.config = {k: v["value"] if isinstance(v, dict) and set(v) == {"value"} else v
                  for k, v in run.config.items() if k != "_wandb"}
    return run


def offline_runs(root: str | Path) -> List[Path]:
    """Every offline run directory below root (e.g. an artifact directory with W&B logging)."""
    return sorted(p.parent for p in Path(root).glob("**/offline-run-*/run-*.wandb"))
