"""Canonical records every data source is read into; everything downstream consumes only these."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional


@dataclass(frozen=True)
class Prompt:
    """A prompt for generation; `reference` is its demonstration (SFT target / `reference` anchor), if any."""

    prompt: str
    reference: Optional[str] = None
    task: Optional[str] = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Preference:
    """One labelled comparison. `probability` is the annotator's P(chosen preferred), when known (the oracle).
    `label` is a soft label as the file gives it: P(chosen preferred) in (0.5, 1), which RMs train on as a soft
    target; None is a hard label (trained as 1). Digits labels are sampled, hence hard, whatever `probability`."""

    prompt: str
    chosen: str
    rejected: str
    task: Optional[str] = None
    probability: Optional[float] = None
    label: Optional[float] = None

    def to_dict(self) -> dict:
        return asdict(self)
