"""The HTTP contract of a deployed model: request and response bodies as pydantic models,
so ``/docs`` and ``/openapi.json`` describe exactly what the endpoint takes and returns."""

from __future__ import annotations

from pydantic import BaseModel, Field


class PredictJSONRequest(BaseModel):
    """The JSON alternative to a multipart upload."""

    image_base64: str = Field(min_length=1, description="The encoded image file (JPEG, PNG, ...), base64; a data: URL "
                                                        "prefix is allowed.")
    conf: float | None = Field(None, ge=0.0, le=1.0, description="Score threshold; the deployment's default when omitted.")


class Timings(BaseModel):
    preprocess_ms: float
    inference_ms: float
    postprocess_ms: float
    decode_ms: float = Field(description="Reading and decoding the uploaded bytes.")
    batch_size: int = Field(description="Images in the model call that served this request (dynamic batching).")
    total_ms: float = Field(description="From the request's arrival to the response, in this replica.")


class PredictResponse(BaseModel):
    model: str
    model_version: str = Field(description="The deployment version serving the request.")
    deployment: str
    image_width: int
    image_height: int
    boxes_xyxy: list[list[float]] = Field(description="(N, 4) boxes in the image's own pixels: x1, y1, x2, y2.")
    class_names: list[str]
    scores: list[float]
    masks_rle: list[dict] | None = Field(None, description="COCO RLE masks, one per box, for segmentation models.")
    timings: Timings


class ErrorResponse(BaseModel):
    error: str = Field(description="A short machine-readable reason, e.g. 'unauthorized', 'not_an_image'.")
    detail: str = Field(description="What was wrong and what to do.")


class HealthResponse(BaseModel):
    status: str
    deployment: str
    version: str
    model: str
    ingress: str = Field(description='What relays HTTP to the replica: "haproxy" or "serve proxy".')
