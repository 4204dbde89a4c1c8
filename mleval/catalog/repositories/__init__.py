"""The catalog's typed repositories: one small class per entity holding the SQL about it, so no
module outside ``mleval.catalog`` writes SQL. Each wraps a catalog client (the file itself or its
owner actor's client: both serve ``query``, ``query_rows``, ``get``, ``insert``, ``update``, ...)
and returns core records, plain values or Arrow tables. Build one per use, e.g.
``ImageRepository(ws.catalog).file_paths(ids)``: it holds nothing but the client, so a catalog
handed to its owner actor (``attach_ray``) is followed by the next one built."""

from mleval.catalog.repositories.annotations import AnnotationRepository
from mleval.catalog.repositories.datasets import DatasetRepository
from mleval.catalog.repositories.deployments import DeploymentRepository
from mleval.catalog.repositories.evaluations import EvaluationRepository
from mleval.catalog.repositories.images import ImageRepository
from mleval.catalog.repositories.jobs import PredictionRepository
from mleval.catalog.repositories.models import ModelRepository

__all__ = ["AnnotationRepository", "DatasetRepository", "DeploymentRepository", "EvaluationRepository",
           "ImageRepository", "ModelRepository", "PredictionRepository"]
