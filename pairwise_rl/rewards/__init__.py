"""One reward interface for every judge: score(prompt, response) and compare(prompt, response, anchor).

Importing this package registers the RM modes (bt, generative, gold) in RM_MODES.
"""

from pairwise_rl.rewards.base import RM_MODES, PairProbabilities, RewardModel, load_reward_model  # noqa: F401
from pairwise_rl.rewards import bt, generative, gold  # noqa: F401,E402
