"""Tasks with a gold judge: the embedded digits task."""
