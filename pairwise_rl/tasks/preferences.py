"""A preference dataset as a task (data=hh_rlhf | ultrafeedback | jsonl).

    SFT demonstrations   (prompt, chosen) of the training split, one per prompt
    preference pairs     the dataset's rows, train / val / test by a hash of the prompt
    RL prompts           the training split's prompts, each with its chosen response as reference (the paper's
                         "ground-truth anchor"); or a prompt-only file (data.rl_prompts), from which prompts that
                         hash into the held-out splits are dropped (and counted) so evaluation stays held out
    val / eval prompts   the val / test split's prompts, with their chosen response as reference

Rows are read, checked and truncated once per task object (data/readers.py); every skip and cut is counted.
There is no gold judge: a policy is judged by the independent judge named in `eval.judge`.
"""

from __future__ import annotations

import logging
from typing import Dict, List, Optional, Tuple

from omegaconf import DictConfig, OmegaConf

from pairwise_rl.data.encoding import truncate_text
from pairwise_rl.data.prompts import read_prompts
from pairwise_rl.checks import check, fraction, one_of, positive
from pairwise_rl.errors import DataSourceError
from pairwise_rl.data.readers import (PREFERENCE_FORMATS, PREFERENCE_LABELS, ReadReport, apply_length_policy,
                                     read_preferences, split_by_prompt, split_of_prompt, unit_hash)
from pairwise_rl.data.records import Preference, Prompt
from pairwise_rl.tasks.base import TASKS, Task, first_per_prompt

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


def read_dataset(data: DictConfig, tokenizer) -> Tuple[List[Preference], ReadReport]:
    """Every readable pair of data.path, over-long fields handled by data.overlong with `tokenizer`'s counts."""
    records, rows, report = read_preferences(data.path, data.source, OmegaConf.to_container(data.fields),
                                             data.on_bad_row, data.split, data.max_rows)
    records = apply_length_policy(records, rows,
                                  lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"]),
                                  lambda text, limit, keep: truncate_text(tokenizer, text, limit, keep),
                                  data.max_prompt_tokens, data.max_response_tokens, data.overlong, report)
    log.info("read %s: %d rows, %d kept, skipped %s, truncated %s", data.path, report.rows, report.kept,
             dict(report.skipped), dict(report.truncated))
    return records, report


@TASKS.register("preferences")
class PreferenceTask(Task):
    name = "preferences"

    def __init__(self, cfg: DictConfig):
        self.cfg, self.data = cfg, cfg.data
        self._splits: Optional[Dict[str, List[Preference]]] = None
        self._report: Optional[ReadReport] = None
        self._rl_report: Optional[ReadReport] = None
        self._tokenizer = None

    @classmethod
    def check_config(cls, cfg: DictConfig) -> None:
        one_of(cfg, "data.source", PREFERENCE_FORMATS.names())
        check(cfg.data.path is not None, "data.path", f"data.source={cfg.data.source} needs a hub id or a file path")
        one_of(cfg, "data.on_bad_row", ["error", "skip"])
        one_of(cfg, "data.overlong", ["truncate", "skip", "error"])
        fraction(cfg, "data.val_fraction")
        fraction(cfg, "data.test_fraction")
        check(cfg.data.val_fraction + cfg.data.test_fraction < 1, "data.test_fraction",
              "val_fraction + test_fraction must leave rows for training")
        check(cfg.data.val_fraction > 0 and cfg.data.test_fraction > 0, "data.test_fraction",
              "val_fraction and test_fraction must both be > 0: RL validates and evaluates on held-out prompts")
        positive(cfg, "data.num_val_prompts")
        check(0 <= cfg.data.judge_fraction < 1, "data.judge_fraction",
              f"must be in [0, 1), got {cfg.data.judge_fraction}")
        if cfg.data.source == "jsonl":
            f = cfg.data.fields
            check(bool(f.preference) == bool(f.response_a and f.response_b), "data.fields",
                  "give chosen + rejected, or response_a + response_b + preference")
            one_of(cfg, "data.fields.preference_format", PREFERENCE_LABELS.names())

    # ---------------------------------------------------------------------------------------------- reading
    @property
    def tokenizer(self):
        if self._tokenizer is None:
            from pairwise_rl.models.factory import init_tokenizer  # lazy: reading needs it, composing does not

            self._tokenizer = init_tokenizer(self.cfg.model)
        return self._tokenizer

    def splits(self) -> Dict[str, List[Preference]]:
        """All readable pairs, split by prompt (uncapped)."""
        if self._splits is None:
            records, report = read_dataset(self.data, self.tokenizer)
            self._splits = split_by_prompt(records, self.data.val_fraction, self.data.test_fraction)
            self._report = report
        return self._splits

    # ---------------------------------------------------------------------------------------------- roles
    def preference_pairs(self) -> Dict[str, List[Preference]]:
        """train / val / test, plus `judge` when data.judge_fraction > 0: the pairs of that share of the training
        prompts, which only the evaluation judge (judge.name=gold_rm) trains on."""
        splits = dict(self.splits())
        fraction = self.data.judge_fraction
        if fraction > 0:
            train = splits["train"]
            splits["judge"] = [p for p in train if unit_hash("judge/" + p.prompt) < fraction]
            splits["train"] = [p for p in train if unit_hash("judge/" + p.prompt) >= fraction]
        caps = {"train": self.cfg.rm.num_train_pairs, "val": None, "test": self.cfg.rm.num_eval_pairs, "judge": None}
        out = {}
        for split in [*SPLITS, *(["judge"] if fraction > 0 else [])]:
            out[split] = splits[split][:caps[split]] if caps[split] else list(splits[split])
            if not out[split]:
                raise DataSourceError(f"data.path={self.data.path}: no {split} pairs left after reading "
                                      f"({self._report.kept} rows kept; skipped {dict(self._report.skipped)})").with_fix(
                    "an empty file or one whose rows were all skipped has nothing to train on; otherwise check "
                    "data.val_fraction / data.test_fraction (and data.judge_fraction), which decide each split")
        return out

    def pair_metrics(self) -> Dict[str, float]:
        self.splits()
        metrics = self._report.as_metrics()
        if self._rl_report is not None:
            metrics.update(self._rl_report.as_metrics("rl_prompts"))
        return metrics

    def sft_demos(self) -> List[Prompt]:
        return first_per_prompt(self.splits()["train"])  # the whole training split (judge share included)

    def rl_prompts(self) -> List[Prompt]:
        source = self.data.rl_prompts
        if source.path is None:
            return first_per_prompt(self.splits()["train"])
        records, report = read_prompts(source.path, source.prompt, source.reference, self.data.on_bad_row,
                                       self.data.split, source.max_rows)
        kept = [r for r in records if split_of_prompt(r.prompt, self.data.val_fraction,
                                                       self.data.test_fraction) == "train"]
        report.skipped["held_out_prompt"] += len(records) - len(kept)
        report.kept = len(kept)
        self._rl_report = report
        if not kept:
            raise DataSourceError(f"data.rl_prompts.path={source.path}: no training prompts left ({report.rows} "
                                  f"rows, skipped {dict(report.skipped)})").with_fix(
                "give a prompt file with prompts outside the held-out split (data.val_fraction / data.test_fraction)")
        log.info("RL prompts from %s: %d rows, %d kept, skipped %s", source.path, report.rows, len(kept),
                 dict(report.skipped))
        return kept

    def val_prompts(self) -> List[Prompt]:
        return first_per_prompt(self.splits()["val"])[:self.data.num_val_prompts]

    def eval_prompts(self) -> List[Prompt]:
        return first_per_prompt(self.splits()["test"])[:self.cfg.eval.num_prompts]
