"""Images in: sources, decoding, the synthetic world, splits, augmentation, Bronze rows."""
