"""What the Gold tables say: the markdown report, its findings, the figures, and the one
number format they share."""
