"""Flax linen modules of the tree-recursive record VAE."""
