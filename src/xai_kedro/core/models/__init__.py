"""The backbone and the classifier every stage shares, its training loop and batched inference."""
