"""stage=rm_eval: a trained RM artifact on a preference file it never saw, with calibration and length bias."""

from __future__ import annotations

import json

import pytest
import torch

from pairwise_rl.cli import run
from pairwise_rl.config import ConfigError
from pairwise_rl.files import read_json, read_jsonl
from pairwise_rl.eval.metrics import length_bias
from pairwise_rl.pipeline import ensure


def test_length_bias_by_hand():
    probs = torch.tensor([0.9, 0.2, 0.7, 0.6])   # judge picks y1, y2, y1, y1
    labels = torch.tensor([1.0, 1.0, 0.0, 1.0])  # labels pick y1, y1, y2, y1
    len_1 = torch.tensor([10, 5, 8, 4])
    len_2 = torch.tensor([4, 9, 8, 7])           # y1 longer, y2 longer, tie, y2 longer
    out = length_bias(probs, labels, len_1, len_2)
    assert out["length/pairs"] == 3 and out["length/tied_pairs"] == 1
    # longer wins under labels: pair 1 (y1 longer, chosen y1) yes; pair 2 (y2 longer, chosen y1) no; pair 4 no
    assert out["length/longer_wins_labels"] == pytest.approx(1 / 3)
    # under the judge: pair 1 yes; pair 2 (picks y2, longer) yes; pair 4 (picks y1, shorter) no
    assert out["length/longer_wins_judge"] == pytest.approx(2 / 3)


def test_rm_eval_judges_every_row_of_a_mapped_jsonl_file(make_debug_cfg, make_cfg, tmp_path):
    rm_dir = ensure(make_debug_cfg("rm=generative"), "rm")  # a digits RM, judged on a file of digits rows
    rows = [{"q": "sort: 3 1 2 =", "good": " 1 2 3", "bad": " 3 2 1 0"},
            {"q": "reverse: 1 2 3 =", "good": " 3 2 1", "bad": " 1 2"},
            {"q": "add: 12 + 30 =", "good": " 42", "bad": " 4"},
            {"q": "sort: 5 4 =", "good": " 4 5", "bad": ""}]  # the last row has an empty response: skipped
    path = tmp_path / "prefs.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    overrides = ["stage=rm_eval", f"rm.path={rm_dir}", "data=jsonl", f"data.path={path}", "data.fields.prompt=q",
                 "data.fields.chosen=good", "data.fields.rejected=bad", "data.on_bad_row=skip",
                 "logger=none", "trainer.progress_bar=none"]
    metrics = run(make_cfg(*overrides))
    assert metrics["pairs"] == 3 and metrics["data/skipped/empty_field"] == 1
    assert {"accuracy", "nll", "brier", "ece", "position_consistency", "accuracy_first_order",
            "length/longer_wins_labels", "length/longer_wins_judge"} <= set(metrics)
    assert metrics["length/longer_wins_labels"] == pytest.approx(2 / 3)  # reverse and add: the chosen is longer
    out = make_cfg(*overrides).paths.output_dir
    assert len(read_jsonl(f"{out}/eval_pairs.jsonl")) == 3 and read_json(f"{out}/metrics.json")["pairs"] == 3
    with pytest.raises(ConfigError, match="rm.path"):
        run(make_cfg("stage=rm_eval", "data=jsonl", f"data.path={path}"))
