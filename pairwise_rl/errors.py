"""Errors the project raises on purpose, about what the user gave it: a config value, a data file or row, a model
or dataset that cannot be found, an artifact the cache policy refuses.

Each is a `UserError`: its message names the key, file, row or field, and `fix` says what to do. The CLI prints
both as two lines and exits with status 1, without a traceback (`HYDRA_FULL_ERROR=1` shows the traceback).
Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from typing import Optional


class UserError(Exception):
    """Mixed into an error class (beside its builtin base, so `except ValueError` still catches a ConfigError)."""

    fix = ""  # the class's default advice; an instance may carry its own

    def with_fix(self, fix: Optional[str]) -> "UserError":
        if fix:
            self.fix = fix
        return self


class ModelNotFoundError(UserError, OSError):
    """A model or tokenizer (hub id or local directory) that cannot be loaded."""

    fix = ("without hub access, download the model elsewhere (`huggingface-cli download <id>`), copy the directory "
           "here and set model.name_or_path=/path/to/that/dir")


class DataSourceError(UserError, OSError):
    """A data source (data.path, a dataset id, a results directory) that is missing or cannot be read as a whole
    (a bad row is a `data.readers.DataError`, which names the row)."""

    fix = "check data.path (a .jsonl, .jsonl.gz or .parquet file, or a hub dataset id)"


def report(error: BaseException) -> str:
    """The two lines the CLI prints for a UserError: what is wrong, and what to do."""
    lines = [f"error: {error}"]
    fix = getattr(error, "fix", "")
    if fix:
        lines.append(f"fix: {fix}")
    return "\n".join(lines)
