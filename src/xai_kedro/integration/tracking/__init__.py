"""MLflow run tracking: its settings (`settings`) and the hook that records each run (`hook`)."""

from xai_kedro.integration.tracking.hook import (
    MlflowTrackingHook,
    TrackedSessionStore,
    fail_open_runs,
)
from xai_kedro.integration.tracking.settings import (
    MetricSource,
    TrackingConfigError,
    TrackingSettings,
)

__all__ = [
    "MetricSource",
    "MlflowTrackingHook",
    "TrackedSessionStore",
    "TrackingConfigError",
    "TrackingSettings",
    "fail_open_runs",
]
