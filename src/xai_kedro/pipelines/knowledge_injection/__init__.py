"""Knowledge injection via XAI: diagnose, generate targeted data, refine, measure against a control."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
