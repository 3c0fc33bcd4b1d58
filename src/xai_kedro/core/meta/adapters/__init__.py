"""Adapter-level questions: estimate each adapter's OOD accuracy without OOD labels (the XAI
meta-regressor against label-free estimators), summarise the estimators, and select adapters."""
