"""Knowledge injection via XAI: diagnose failures from heatmaps on the validation split,
generate targeted training images (a generator registry), build an untargeted control and a
no-new-data arm of the same size, retrain every arm with several seeds, and compare the arms
with intervals that resample seeds and test images.

Modules: `diagnosis` (failures and per-class failure profiles), `generators` (the registry and
the built-in generators), `datasets` (each arm's rows with provenance), `refine` (the arms x
seeds trainings), `measure` (the Gold table `knowledge_injection`), `report` (report section,
plot, gallery).
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
from xai_kedro.core.injection.refine import RefineSettings

__all__ = [
    "GENERATORS",
    "DiagnosisConfig",
    "GeneratedImages",
    "GenerationRequest",
    "ImagePool",
    "MeasureSettings",
    "RefineSettings",
    "failure_profiles",
    "find_failures",
    "generate",
    "get_generator",
    "knowledge_injection_table",
    "register_generator",
]
