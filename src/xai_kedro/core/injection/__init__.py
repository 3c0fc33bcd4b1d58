"""Knowledge injection via XAI: diagnose failures from heatmaps on the validation split,
generate targeted training images (a generator registry), build an untargeted control of the
same size, and measure baseline vs targeted vs control with paired, image-clustered intervals.

Modules: `diagnosis` (failures and per-class failure profiles), `generators` (the registry and
the built-in generators), `datasets` (targeted and control rows with provenance), `measure`
(the Gold table `knowledge_injection`), `report` (report section, plot, gallery).
"""

from xai_kedro.core.injection.diagnosis import DiagnosisConfig, failure_profiles, find_failures
from xai_kedro.core.injection.generator_api import (
    GENERATORS,
    GeneratedImages,
    GenerationRequest,
    ImagePool,
    generate,
    get_generator,
    register_generator,
)
from xai_kedro.core.injection.measure import MeasureSettings, knowledge_injection_table

__all__ = [
    "GENERATORS",
    "DiagnosisConfig",
    "GeneratedImages",
    "GenerationRequest",
    "ImagePool",
    "MeasureSettings",
    "failure_profiles",
    "find_failures",
    "generate",
    "get_generator",
    "knowledge_injection_table",
    "register_generator",
]
