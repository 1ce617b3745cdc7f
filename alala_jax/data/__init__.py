"""Data: vocabulary and codec, CSV loading, synthetic data."""
