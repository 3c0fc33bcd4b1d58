"""Monitoring of unlabeled batches: label-free accuracy estimates, a CBPE-style anchor, embedding
drift (MMD permutation test) and per-image failure risk of the deployed model."""
