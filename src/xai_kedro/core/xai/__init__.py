"""Explanations and what is measured on them: heatmaps, explainers, curves, metrics, the engine."""
