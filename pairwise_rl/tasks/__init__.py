"""Tasks: the interface (`base.py`) and its implementations, the embedded digits task (`digits_task.py`, with a
gold judge) and preference datasets (`preferences.py`).

Importing the package registers every implementation in `base.TASKS`, so whoever reaches `load_task` through
`pairwise_rl.tasks.base` finds them all; `base.py` itself imports no implementation (no import circle).
"""

from pairwise_rl.tasks import digits_task, preferences  # noqa: F401 -- importing the task modules registers them
