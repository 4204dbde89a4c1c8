"""Enumerations of the data model. Values are what the catalog stores."""

from __future__ import annotations

from enum import StrEnum


class DatasetSplit(StrEnum):
    TRAIN = "train"
    VALIDATION = "validation"
    TEST = "test"


class ImageFormat(StrEnum):
    JPEG = "JPEG"
    PNG = "PNG"
    TIFF = "TIFF"
    BMP = "BMP"
    WEBP = "WEBP"
    GIF = "GIF"


class CreationMethod(StrEnum):
    USER = "user"
    MODEL = "model"


class ReviewState(StrEnum):
    # user annotations
    DRAFT = "draft"
    VALIDATED = "validated"
    FINALIZED = "finalized"
    # model annotations
    GENERATED = "generated"
    REVIEWED = "reviewed"
    ACCEPTED = "accepted"
    REJECTED = "rejected"


class ModelType(StrEnum):
    DETECTION = "detection"
    SEGMENTATION = "segmentation"


class ModelTask(StrEnum):
    """What a model's output is: boxes, boxes with masks, or masks for given prompts."""

    DETECT = "detect"
    SEGMENT = "segment"
    PROMPTABLE = "promptable"


class Framework(StrEnum):
    YOLO11 = "YOLO11"
    YOLO12 = "YOLO12"
    RT_DETR = "RT-DETR"
    SAM2 = "SAM2"


class TrainingStatus(StrEnum):
    PRE_TRAINED = "pre-trained"
    TRAINING = "training"
    TRAINED = "trained"
    FAILED = "failed"


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class DeploymentStatus(StrEnum):
    DEPLOYING = "deploying"
    ACTIVE = "active"
    INACTIVE = "inactive"
    FAILED = "failed"
