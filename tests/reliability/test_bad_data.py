"""Bad data through the CLI: `stage=rm` on a preference file fails naming file, row and field before any model
is built, or (data.on_bad_row=skip) skips and counts, and the counts are part of the artifact."""

import json

import pytest

from pairwise_rl.cli import run
from pairwise_rl.data.readers import DataError
from pairwise_rl.pipeline import COMPLETE, stage_metrics
from pairwise_rl.files import read_json


def _prefs_file(path, bad_rows):
    rows = [json.dumps({"prompt": f"Q{i}: what is {i}+{i}?", "chosen": f"{2 * i}", "rejected": f"{2 * i + 1}"})
            .encode() for i in range(60)]
    for position, raw in bad_rows:
        rows.insert(position, raw)
    path.write_bytes(b"\n".join(rows) + b"\n")
    return path


BAD = [(3, b'{"prompt": "p", "chosen": '), (10, b'{"prompt": "p", "chosen": "x", "rejected": "x"}'),
       (20, b'{"prompt": "\xc3\x28", "chosen": "a", "rejected": "b"}'), (30, b'{"prompt": "p", "chosen": ""}')]
RM = ("stage=rm", "data=jsonl", "rm=bt", "debug=fast", "rm.max_steps=4", "data.max_prompt_tokens=32",
      "data.max_response_tokens=8")


def test_the_first_bad_row_stops_the_stage_naming_file_row_and_field(make_cfg, tmp_path):
    path = _prefs_file(tmp_path / "prefs.jsonl", BAD)
    with pytest.raises(DataError) as info:
        run(make_cfg(*RM, f"data.path={path}"))
    assert str(info.value).startswith(f"{path}, row 4: malformed JSON")


def test_skip_policy_counts_every_skipped_and_truncated_row_in_the_artifact(make_cfg, tmp_path):
    path = _prefs_file(tmp_path / "prefs.jsonl", BAD + [(40, json.dumps(
        {"prompt": "a very long prompt " * 5, "chosen": "yes", "rejected": "no"}).encode())])
    out = run(make_cfg(*RM, f"data.path={path}", "data.on_bad_row=skip", "data.val_fraction=0.2",
                       "data.test_fraction=0.2"))
    pairs = stage_metrics(read_json(out / COMPLETE)["needs"]["pairs"])
    assert pairs["data/rows"] == 65 and pairs["data/kept"] == 61
    assert {k: v for k, v in pairs.items() if k.startswith("data/skipped/")} == {
        "data/skipped/malformed_json": 1, "data/skipped/identical_pair": 1, "data/skipped/not_utf8": 1,
        "data/skipped/empty_field": 1}
    assert pairs["data/truncated/prompt"] == 1
    assert pairs["train/pairs"] + pairs["val/pairs"] + pairs["test/pairs"] == 61
    assert 0.0 <= stage_metrics(out)["accuracy"] <= 1.0


def test_overlong_error_policy_names_the_row(make_cfg, tmp_path):
    path = _prefs_file(tmp_path / "prefs.jsonl", [(5, json.dumps({"prompt": "x" * 40, "chosen": "a",
                                                                  "rejected": "b"}).encode())])
    with pytest.raises(DataError, match=r"row 6, field 'prompt': 40 tokens > the limit of 32"):
        run(make_cfg(*RM, f"data.path={path}", "data.overlong=error"))
