"""Libraries that report usage to their vendors unless told not to: MLflow 3's telemetry, Ray's usage stats, the
Hugging Face hub's. `no_usage_reports` turns them off for this process and what it starts, unless the environment
already says otherwise (docs/security.md). The console script calls it first; the components that start such a
library (the trainer's MLflow tracker, a Ray started for a corpus build) call it too, for use as a library."""

from __future__ import annotations

import os

NO_USAGE_REPORTS = {"HF_HUB_DISABLE_TELEMETRY": "1", "MLFLOW_DISABLE_TELEMETRY": "true",
                    "RAY_USAGE_STATS_ENABLED": "0", "DO_NOT_TRACK": "1"}


def no_usage_reports() -> None:
    for key, value in NO_USAGE_REPORTS.items():
        os.environ.setdefault(key, value)
