"""Each preference format parses real-shaped rows; bad rows are named (file, row, field) or skipped and counted."""

import codecs
import gzip
import json

import pytest

from pairwise_rl.data.readers import (DataError, ReadReport, apply_length_policy, read_preferences,
                                      split_by_prompt, split_hh_transcripts)
from pairwise_rl.data.records import Preference
from pairwise_rl.errors import DataSourceError

HH_ROW = {
    "chosen": "\n\nHuman: What is 2+2?\n\nAssistant: Let me think.\n\nHuman: ok\n\nAssistant: It is 4.",
    "rejected": "\n\nHuman: What is 2+2?\n\nAssistant: Let me think.\n\nHuman: ok\n\nAssistant: No idea.",
}


def write_jsonl(path, rows, gz=False):
    data = b"".join((r if isinstance(r, bytes) else json.dumps(r).encode()) + b"\n" for r in rows)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def test_hh_transcripts_split_at_the_last_shared_assistant_turn():
    prompt, chosen, rejected = split_hh_transcripts(HH_ROW["chosen"], HH_ROW["rejected"])
    assert prompt == "\n\nHuman: What is 2+2?\n\nAssistant: Let me think.\n\nHuman: ok\n\nAssistant:"
    assert (chosen, rejected) == ("It is 4.", "No idea.")


def test_hh_rlhf_gzipped_file_reads_every_row(tmp_path):
    path = write_jsonl(tmp_path / "hh.jsonl.gz", [HH_ROW, HH_ROW], gz=True)
    records, rows, report = read_preferences(str(path), "hh_rlhf")
    assert rows == [1, 2] and report.rows == 2 and report.kept == 2
    assert records[0] == Preference(records[0].prompt, "It is 4.", "No idea.", task="hh_rlhf")


def test_ultrafeedback_message_lists_and_plain_strings(tmp_path):
    row = {"prompt": "Name a colour.",
           "chosen": [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Blue."}],
           "rejected": [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Seven."}]}
    plain = {"prompt": "Say hi.", "chosen": "Hi!", "rejected": "Bye."}
    records, _, _ = read_preferences(str(write_jsonl(tmp_path / "uf.jsonl", [row, plain])), "ultrafeedback")
    assert [(r.prompt, r.chosen, r.rejected) for r in records] == [("Name a colour.", "Blue.", "Seven."),
                                                                   ("Say hi.", "Hi!", "Bye.")]


def test_generic_field_mapping_and_preference_values(tmp_path):
    rows = [{"q": "p1", "x": "a1", "y": "b1", "pref": 0.8}, {"q": "p2", "x": "a2", "y": "b2", "pref": "b"}]
    fields = {"prompt": "q", "response_a": "x", "response_b": "y", "preference": "pref"}
    records, _, _ = read_preferences(str(write_jsonl(tmp_path / "g.jsonl", rows)), "jsonl", fields)
    assert (records[0].chosen, records[0].rejected, records[0].probability) == ("a1", "b1", pytest.approx(0.8))
    assert (records[1].chosen, records[1].rejected, records[1].probability) == ("b2", "a2", 1.0)
    mapped = [{"prompt": "p", "good": "g", "bad": "b"}]
    records, _, _ = read_preferences(str(write_jsonl(tmp_path / "m.jsonl", mapped)), "jsonl",
                                     {"prompt": "prompt", "chosen": "good", "rejected": "bad"})
    assert (records[0].chosen, records[0].rejected) == ("g", "b")


BAD_ROWS = [  # (row bytes or dict, field named in the error, skip reason)
    (b'{"chosen": "x", "rejected": ', None, "malformed_json"),
    (b'{"prompt": "\xff\xfe", "chosen": "a", "rejected": "b"}', None, "not_utf8"),
    ({"chosen": "a", "rejected": "b"}, "prompt", "missing_field"),
    ({"prompt": "p", "chosen": "   ", "rejected": "b"}, "chosen", "empty_field"),
    ({"prompt": "p", "chosen": 3, "rejected": "b"}, "chosen", "wrong_type"),
    ({"prompt": "p", "chosen": "same", "rejected": "same"}, "rejected", "identical_pair"),
    ([1, 2], None, "not_an_object"),
]


@pytest.mark.parametrize("bad,field,reason", BAD_ROWS, ids=[r for _, _, r in BAD_ROWS])
def test_a_bad_row_fails_naming_file_row_and_field(bad, field, reason, tmp_path):
    good = {"prompt": "p", "chosen": "a", "rejected": "b"}
    path = write_jsonl(tmp_path / "prefs.jsonl", [good, bad, good])
    with pytest.raises(DataError) as info:
        read_preferences(str(path), "jsonl")
    assert info.value.row == 2 and info.value.field == field
    assert str(path) in str(info.value) and "row 2" in str(info.value)
    records, rows, report = read_preferences(str(path), "jsonl", on_bad_row="skip")
    assert rows == [1, 3] and report.skipped == {reason: 1} and report.rows == 3 and report.kept == 2
    assert report.as_metrics()[f"data/skipped/{reason}"] == 1.0


def test_a_tie_and_an_out_of_range_preference_are_bad_rows(tmp_path):
    fields = {"prompt": "prompt", "response_a": "a", "response_b": "b", "preference": "p"}
    path = write_jsonl(tmp_path / "t.jsonl", [{"prompt": "q", "a": "x", "b": "y", "p": 0.5},
                                              {"prompt": "q", "a": "x", "b": "y", "p": 1.5}])
    _, _, report = read_preferences(str(path), "jsonl", fields, on_bad_row="skip")
    assert report.skipped == {"tie": 1, "out_of_range": 1}


def test_hh_row_without_a_shared_turn_is_named(tmp_path):
    path = write_jsonl(tmp_path / "hh.jsonl", [{"chosen": "Human: hi", "rejected": "Robot: hi"}])
    with pytest.raises(DataError, match="row 1, field 'chosen'.*share no"):
        read_preferences(str(path), "hh_rlhf")


def test_missing_file_and_unreachable_hub_dataset_say_how_to_use_a_local_file(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(DataSourceError, match="no such file"):
        read_preferences(str(tmp_path / "nope.jsonl"), "jsonl")
    with pytest.raises(DataSourceError, match="not a local file and could not be loaded") as caught:
        read_preferences("some-org/not-cached-anywhere", "hh_rlhf")
    assert "data.path=/path/to/that/file" in caught.value.fix


def test_a_utf8_byte_order_mark_is_not_part_of_the_first_row(tmp_path):
    plain = write_jsonl(tmp_path / "plain.jsonl", [HH_ROW, HH_ROW])
    marked = tmp_path / "bom.jsonl"
    marked.write_bytes(codecs.BOM_UTF8 + plain.read_bytes())
    gz = tmp_path / "bom.jsonl.gz"
    gz.write_bytes(gzip.compress(marked.read_bytes()))
    expected, _, _ = read_preferences(str(plain), "hh_rlhf")
    for path in (marked, gz):
        records, rows, _ = read_preferences(str(path), "hh_rlhf")
        assert records == expected and len(records) == 2


def test_a_file_that_is_not_gzip_or_is_cut_short_is_named(tmp_path):
    fake = tmp_path / "pairs.jsonl.gz"
    fake.write_text(json.dumps(HH_ROW) + "\n")  # plain text under a .gz name
    with pytest.raises(DataSourceError, match=r"pairs.jsonl.gz.*cannot be read as a gzip file before its first row"):
        read_preferences(str(fake), "hh_rlhf")
    whole = gzip.compress(("\n".join(json.dumps(HH_ROW) for _ in range(200)) + "\n").encode())
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DataSourceError, match=r"cut.jsonl.gz.*cannot be read as a gzip file after row \d+ \(EOFError"):
        read_preferences(str(cut), "hh_rlhf")


def test_a_corrupt_parquet_file_is_named(tmp_path):
    bad = tmp_path / "pairs.parquet"
    bad.write_bytes(b"PAR1 this is not a parquet file")
    with pytest.raises(DataSourceError, match=r"pairs.parquet.*cannot be read as a parquet file"):
        read_preferences(str(bad), "hh_rlhf")


def test_parquet_files_read_through_datasets(tmp_path):
    import datasets

    datasets.Dataset.from_list([HH_ROW]).to_parquet(str(tmp_path / "hh.parquet"))
    records, rows, _ = read_preferences(str(tmp_path / "hh.parquet"), "hh_rlhf")
    assert rows == [1] and records[0].chosen == "It is 4."


def _lengths(records, policy, report):
    count = len  # one token per character
    cut = lambda text, limit, keep: text[:limit] if keep == "start" else text[-limit:]  # noqa: E731
    return apply_length_policy(records, list(range(1, len(records) + 1)), count, cut, 5, 3, policy, report)


def test_overlong_rows_are_truncated_skipped_or_named_and_always_counted():
    records = [Preference("abcdefgh", "xyzw", "q"), Preference("ok", "a", "b"), Preference("p", "aaaa1", "aaaa2")]
    report = ReadReport("mem")
    kept = _lengths(records, "truncate", report)
    # row 1: prompt keeps its end, chosen its start; row 3: both cut to "aaa" -> identical -> skipped, counted
    assert [(r.prompt, r.chosen, r.rejected) for r in kept] == [("defgh", "xyz", "q"), ("ok", "a", "b")]
    assert report.truncated == {"prompt": 1, "chosen": 2, "rejected": 1}
    assert report.skipped == {"identical_after_truncation": 1}
    report = ReadReport("mem")
    assert len(_lengths(records, "skip", report)) == 1 and report.skipped == {"overlong": 2}
    with pytest.raises(DataError, match="row 1, field 'prompt': 8 tokens > the limit of 5"):
        _lengths(records, "error", ReadReport("mem"))


def test_split_by_prompt_keeps_a_prompt_in_one_split_and_is_stable():
    records = [Preference(f"prompt {i % 50}", "a", f"b{i}") for i in range(500)]
    splits = split_by_prompt(records, 0.1, 0.2)
    where = {r.prompt: name for name, rs in splits.items() for r in rs}
    assert all(where[r.prompt] == name for name, rs in splits.items() for r in rs)
    assert split_by_prompt(records, 0.1, 0.2) == splits
    assert len(splits["train"]) > len(splits["test"]) > 0


@pytest.mark.parametrize("fmt,value,chosen,label", [
    ("alpaca_eval", 1.0, "x", None),     # 1 = the first output preferred, hard
    ("alpaca_eval", 1.3, "x", 0.7),      # P(a) = 2 - 1.3: a soft label
    ("alpaca_eval", 2.0, "y", None),
    ("arena", "model_b", "y", None),
    ("arena", "model_a", "x", None),
    ("probability", 0.2, "y", 0.8),
])
def test_label_formats_map_to_chosen_and_soft_label(tmp_path, fmt, value, chosen, label):
    fields = {"prompt": "q", "response_a": "x", "response_b": "y", "preference": "w", "preference_format": fmt}
    path = write_jsonl(tmp_path / "l.jsonl", [{"q": "p", "x": "x", "y": "y", "w": value}])
    (record,), _, _ = read_preferences(str(path), "jsonl", fields)
    assert record.chosen == chosen and (record.label == pytest.approx(label) if label else record.label is None)


def test_label_format_ties_and_bad_values_are_counted(tmp_path):
    fields = {"prompt": "q", "response_a": "x", "response_b": "y", "preference": "w", "preference_format": "arena"}
    rows = [{"q": "p", "x": "x", "y": "y", "w": w} for w in ("tie", "tie (bothbad)", "model_c", 3, "model_a")]
    records, _, report = read_preferences(str(write_jsonl(tmp_path / "a.jsonl", rows)), "jsonl", fields,
                                          on_bad_row="skip")
    assert len(records) == 1 and dict(report.skipped) == {"tie": 2, "out_of_range": 1, "wrong_type": 1}
    fields["preference_format"] = "alpaca_eval"
    with pytest.raises(DataError, match=r"a.jsonl, row 1, field 'w': must be in \[1, 2\], got 0.5"):
        read_preferences(str(write_jsonl(tmp_path / "a.jsonl", [{"q": "p", "x": "x", "y": "y", "w": 0.5}])),
                         "jsonl", fields)
