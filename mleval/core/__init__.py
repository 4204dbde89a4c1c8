"""Plain types shared by all layers. Imports neither ray, torch nor ipywidgets."""

from mleval.core.enums import (
    CreationMethod,
    DatasetSplit,
    DeploymentStatus,
    Framework,
    ImageFormat,
    JobStatus,
    ModelTask,
    ModelType,
    ReviewState,
    TrainingStatus,
)
from mleval.core.errors import (
    CatalogBusyError,
    CatalogUnavailableError,
    ConflictError,
    DependencyError,
    ImageFileError,
    MlevalError,
    NotFoundError,
    TransitionError,
    ValidationError,
)

__all__ = [
    "CatalogBusyError",
    "CatalogUnavailableError",
    "ConflictError",
    "CreationMethod",
    "DatasetSplit",
    "DependencyError",
    "DeploymentStatus",
    "Framework",
    "ImageFileError",
    "ImageFormat",
    "JobStatus",
    "MlevalError",
    "ModelTask",
    "ModelType",
    "NotFoundError",
    "ReviewState",
    "TrainingStatus",
    "TransitionError",
    "ValidationError",
]
