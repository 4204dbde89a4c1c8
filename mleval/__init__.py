"""mleval: evaluate, fine-tune and deploy computer-vision models from JupyterLab, on Ray.

    import mleval
    ws = mleval.Workspace.open("my-workspace")
    report = ws.images.upload("photos/", split="train")
"""

from mleval.core.errors import (
    CatalogBusyError,
    CatalogUnavailableError,
    ConflictError,
    ImageFileError,
    MlevalError,
    NotFoundError,
    TransitionError,
    ValidationError,
)

__version__ = "0.1.0"

__all__ = [
    "CatalogBusyError",
    "CatalogUnavailableError",
    "ConflictError",
    "ImageFileError",
    "MlevalError",
    "NotFoundError",
    "TransitionError",
    "ValidationError",
    "Workspace",
    "__version__",
]


def __getattr__(name: str):
    # The Workspace pulls in DuckDB and Arrow: load it on first use, not on `import mleval`.
    if name == "Workspace":
        from mleval.workspace import Workspace

        return Workspace
    raise AttributeError(f"module 'mleval' has no attribute {name!r}")
