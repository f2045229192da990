"""Thin LightningModules: they own the loops; the math is in algos/, rewards in rewards/."""
