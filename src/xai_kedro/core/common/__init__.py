"""Shared by every part of the library: registries, settings, columns, device, hashing, randomness."""
