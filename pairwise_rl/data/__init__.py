"""Data: canonical records, readers for each source format, batching."""
