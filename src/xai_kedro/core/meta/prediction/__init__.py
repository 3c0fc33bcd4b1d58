"""Per-prediction meta-learning: does a clean image's XAI profile predict whether its
prediction survives a corruption? The meta dataset, the learners, their comparison, the
correlation and importance tables, and the confidence baselines."""
