"""Evaluation: metrics, sample files, reports and plots."""
