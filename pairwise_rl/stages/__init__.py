"""`stage=` commands. Artifact stages (sft, pairs, rm, ppo) run through the pipeline cache; the rest compose them.

Importing this package registers every stage (in `stages.registry.STAGES`, and the artifact stages in
`pipeline.ARTIFACT_STAGES`).
"""

from pairwise_rl.stages import (cache, compare, evaluate, fetch_model, pairs, pipeline, ppo, rm,  # noqa: F401
                                rm_eval, sft)
from pairwise_rl.stages.registry import STAGES

__all__ = ["STAGES"]
