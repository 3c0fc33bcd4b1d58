"""One Spark session for the whole test run, configured like `conf/base/spark.yml`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[1]

# 2-core CI: one torch thread per process (driver and each Spark Python worker) avoids the
# oversubscription that slows CPU torch down by an order of magnitude.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def spark():
    from xai_kedro.spark.session import configure_spark, get_spark

    conf = yaml.safe_load((PROJECT_ROOT / "conf/base/spark.yml").read_text())
    conf.update({"spark.master": "local[2]", "spark.sql.shuffle.partitions": 4})
    configure_spark(conf, project_path=PROJECT_ROOT)
    session = get_spark()
    yield session
    session.stop()
