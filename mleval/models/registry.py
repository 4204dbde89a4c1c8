"""``ws.models``: the zoo seeded into the catalog, models users bring, and loading them."""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mleval.catalog.catalog import new_id, utc_now
from mleval.catalog.repositories import ModelRepository
from mleval.core.enums import Framework, TrainingStatus
from mleval.core.errors import NotFoundError, ValidationError
from mleval.core.records import ModelRecord, RecordList
from mleval.models.settings import ModelSettings, checkpoint_settings, imgsz_for
from mleval.models.zoo import ZOO, zoo_entry

if TYPE_CHECKING:
    from mleval.models.loading import LoadedModel
    from mleval.stores import WorkspaceStores

ZOO_VERSION = "1"
_LOADED_CACHE_SIZE = 4


def model_id_of(model: ModelRecord | str) -> str:
    return model.id if isinstance(model, ModelRecord) else str(model)


class ModelRegistry:
    def __init__(self, workspace: WorkspaceStores):
        self._ws = workspace
        self._seeded = False
        self._loaded: OrderedDict[tuple, LoadedModel] = OrderedDict()

    def _seed_zoo(self) -> None:
        """Insert the zoo entries the catalog does not hold yet (idempotent, one batch)."""
        if self._seeded:
            return
        existing = ModelRepository(self._ws.catalog).names()
        now = utc_now()
        rows = [{
            "id": new_id(), "name": e.name, "type": e.type.value, "variant": e.variant, "version": ZOO_VERSION,
            "framework": e.framework.value, "model_path": e.model_path,
            "training_status": TrainingStatus.PRE_TRAINED.value, "created_at": now, "updated_at": now,
            "metadata": {"zoo_entry": e.name, "config": e.config, "weights": e.weights},
            **ModelSettings(e.imgsz, e.classes, e.task, "zoo").columns(),
        } for e in ZOO if e.name not in existing]
        if rows:
            self._ws.catalog.insert("models", rows)
        self._seeded = True

    def list(self, *, type: str | None = None, framework: str | None = None) -> RecordList[ModelRecord]:
        """Models of the workspace (the zoo and the user's), optionally of one type or framework."""
        self._seed_zoo()
        return ModelRepository(self._ws.catalog).list(type=None if type is None else str(type),
                                                      framework=None if framework is None else str(framework))

    def get(self, model: ModelRecord | str) -> ModelRecord:
        """A model by record, name or id."""
        self._seed_zoo()
        key = model_id_of(model)
        found = ModelRepository(self._ws.catalog).find(key)
        if found is None:
            known = ", ".join(m.name for m in self.list()[:12])
            raise NotFoundError(f"no model named {key!r}; known models include: {known}, ... (ws.models.list()).")
        return found

    def register(
        self,
        name: str,
        weights_path: str | Path,
        *,
        framework: str,
        variant: str,
        architecture: str | None = None,
        version: str = "1",
        metadata: dict | None = None,
    ) -> ModelRecord:
        """Register a weights file the user brings (pretrained elsewhere or fine-tuned).

        ``architecture`` is the zoo name it is built like (e.g. ``"yolo11n"``); by default the
        zoo entry of the same framework and variant. The file is copied into the blob store.
        The model's input size and classes are read from the checkpoint's own training arguments
        and names (``settings_source == "checkpoint"``); a file without training arguments gets
        640 and the names it holds (``settings_source == "assumed"``). SAM 2 checkpoints take the
        zoo entry's settings.
        """
        self._seed_zoo()
        path = Path(weights_path).expanduser()
        if not path.is_file():
            raise ValidationError("model.model_path_accessible",
                                  f"weights file {path} does not exist; give the path of a .pt checkpoint.")
        if framework not in tuple(Framework):
            raise ValidationError("model.framework_supported",
                                  f"framework must be one of: {', '.join(Framework)}; got {framework!r}.")
        entry = zoo_entry(architecture) if architecture else next(
            (e for e in ZOO if e.framework == framework and e.variant == variant and e.task != "segment"), None)
        if entry is None:
            variants = sorted({e.variant for e in ZOO if e.framework == framework})
            raise ValidationError("model.variant_known",
                                  f"no {framework} architecture of variant {variant!r}; known variants: {variants}.")
        if entry.task == "promptable":
            settings = ModelSettings(entry.imgsz, None, entry.task, "zoo")
        else:
            settings = checkpoint_settings(str(path), default_task=entry.task)
        stored = self._ws.blobs.put_file(path)
        now = utc_now()
        model_id = new_id()
        self._ws.catalog.insert("models", [{
            "id": model_id, "name": name, "type": entry.type.value, "variant": variant, "version": version,
            "framework": framework, "model_path": stored.key, "training_status": TrainingStatus.PRE_TRAINED.value,
            "created_at": now, "updated_at": now, **settings.columns(),
            "metadata": {**(metadata or {}), "zoo_entry": entry.name,
                         "source_file": str(path), "weights_source": "registered"},
        }])
        return self.get(model_id)

    def weights_file(self, model: ModelRecord) -> str | None:
        """A local path (with the suffix frameworks expect) of a registered/trained model's weights:
        a link to the blob on a local disk, a downloaded copy from an object store."""
        if not model.model_path.startswith("sha256/"):
            return None
        if not self._ws.blobs.exists(model.model_path):
            raise ValidationError("model.model_path_accessible",
                                  f"weights of {model.name!r} ({model.model_path}) are missing from the blob store.")
        link = self._ws.scratch_dir("weights") / f"{model.model_path.rsplit('/', 1)[-1][:16]}.pt"
        if not link.exists():
            blob = self._ws.blobs.local_path(model.model_path)
            if blob is None:
                self._ws.blobs.download(model.model_path, link)
                return str(link)
            temporary = link.with_suffix(f".{os.getpid()}.tmp")
            os.symlink(blob, temporary)
            os.replace(temporary, link)
        return str(link)

    def load(self, model: ModelRecord | str, *, imgsz: int | None = None, device: str | None = None,
             require_pretrained: bool = False) -> LoadedModel:
        """The model's predictor (kept loaded for reuse), its weights resolved and recorded.
        ``imgsz`` None means the model's own input size (``record.imgsz``)."""
        from mleval.models.loading import load_model

        record = self.get(model)
        imgsz = imgsz_for(record, imgsz)
        key = (record.id, imgsz, device)
        if key in self._loaded:
            self._loaded.move_to_end(key)
            return self._loaded[key]
        loaded = load_model(record, blob_path=self.weights_file(record), imgsz=imgsz, device=device,
                            require_pretrained=require_pretrained)
        self._record_weights(record, loaded)
        self._loaded[key] = loaded
        while len(self._loaded) > _LOADED_CACHE_SIZE:
            self._loaded.popitem(last=False)
        return loaded

    def _record_weights(self, record: ModelRecord, loaded: LoadedModel) -> None:
        metadata: dict[str, Any] = dict(record.metadata or {})
        if metadata.get("weights_source") == loaded.weights.source and "class_names" in metadata:
            return
        metadata.update(weights_source=loaded.weights.source, weights_location=loaded.weights.location,
                        pretrained=loaded.weights.pretrained,
                        class_names=list(getattr(loaded.predictor, "class_names", ())))
        self._ws.catalog.update("models", record.id, {"metadata": metadata})

