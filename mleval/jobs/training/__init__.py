"""Fine-tuning on Ray Train: ``start_training`` (``ws.train``) and ``training_metrics`` (``job.metrics``)."""

from mleval.jobs.training.job import (
    HYPERPARAMETERS,
    start_training,
    training_metrics,
    validate_hyperparameters,
)

__all__ = ["HYPERPARAMETERS", "start_training", "training_metrics", "validate_hyperparameters"]
