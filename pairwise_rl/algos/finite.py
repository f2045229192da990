"""Detecting numerical failure: which of a set of named tensors hold NaN or inf."""

from __future__ import annotations

from typing import List, Optional

import torch


def nonfinite_names(**tensors: Optional[torch.Tensor]) -> List[str]:
    """Names of the given tensors that contain a NaN or an infinity (None entries are ignored)."""
    return [name for name, value in tensors.items()
            if value is not None and not bool(torch.isfinite(value.detach()).all())]
