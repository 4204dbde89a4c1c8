"""Reading an upload on the endpoint: the request body (multipart, JSON base64 or raw image
bytes) to the pixels the model gets, each refusal an :class:`ApiError` with the status and the
``{error, detail}`` body every route answers with."""

from __future__ import annotations

import base64
import binascii

import numpy as np
from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile

from mleval.deploy.schemas import PredictJSONRequest

MULTIPART_OVERHEAD_BYTES = 64 * 1024


class ApiError(Exception):
    def __init__(self, status: int, error: str, detail: str, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status, self.error, self.detail, self.headers = status, error, detail, headers

    def response(self) -> JSONResponse:
        return JSONResponse({"error": self.error, "detail": self.detail}, status_code=self.status,
                            headers=self.headers)


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "too_large", f"the body has {int(declared):,} bytes; this deployment takes at most "
                                         f"{limit:,} (max_upload_bytes).")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise ApiError(413, "too_large", f"the body exceeds {limit:,} bytes (max_upload_bytes).")
    if not body:
        raise ApiError(400, "empty_body", "the request has no body; send the image as multipart/form-data "
                                          "field 'file', or JSON {\"image_base64\": ...}.")
    return bytes(body)


async def read_upload(request: Request, max_upload_bytes: int) -> tuple[bytes, float | None]:
    """The uploaded image bytes and the optional ``conf`` of a multipart, JSON or raw image body."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        body = await _read_body(request, max_upload_bytes + MULTIPART_OVERHEAD_BYTES)

        async def replay() -> dict:
            return {"type": "http.request", "body": body, "more_body": False}

        try:
            form = await Request(request.scope, replay).form(max_files=1, max_fields=4)
        except Exception as error:
            raise ApiError(400, "bad_multipart", f"the multipart body could not be parsed ({error}).") from None
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise ApiError(400, "missing_file", "the multipart body has no file field named 'file'.")
        data = await upload.read()
        conf_text = form.get("conf")
        try:
            conf = float(conf_text) if isinstance(conf_text, str) and conf_text.strip() else None
        except ValueError:
            raise ApiError(400, "bad_conf", f"conf must be a number between 0 and 1; got {conf_text!r}.") from None
    elif content_type == "application/json":
        # base64 is 4/3 the size of the file it carries
        body = await _read_body(request, max_upload_bytes * 4 // 3 + 1024)
        try:
            payload = PredictJSONRequest.model_validate_json(body)
        except Exception as error:
            raise ApiError(400, "bad_json", f"the JSON body must be {{\"image_base64\": \"...\"}}: {error}") from None
        text = payload.image_base64
        if text.startswith("data:"):
            text = text.partition(",")[2]
        try:
            data = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise ApiError(400, "bad_base64", "image_base64 is not valid base64.") from None
        conf = payload.conf
    elif content_type.startswith("image/") or content_type == "application/octet-stream":
        data, conf = await _read_body(request, max_upload_bytes), None
    else:
        raise ApiError(415, "unsupported_media_type",
                       f"content type {content_type or '(none)'!r} is not accepted; send multipart/form-data "
                       "with a 'file' field, application/json with image_base64, or the image bytes as image/*.")
    if not data:
        raise ApiError(400, "empty_file", "the uploaded file is empty (0 bytes).")
    if len(data) > max_upload_bytes:
        raise ApiError(413, "too_large", f"the image has {len(data):,} bytes; at most {max_upload_bytes:,} are taken.")
    if conf is not None and not 0.0 <= conf <= 1.0:
        raise ApiError(400, "bad_conf", f"conf must be between 0 and 1; got {conf}.")
    return data, conf


def decode_upload(data: bytes, max_pixels: int) -> np.ndarray:
    """The RGB pixels of an upload, checked first (a bomb by its header, before any decoding; a file cut short by decoding it
    strictly), so neither reaches the model."""
    from mleval.core.errors import ImageFileError
    from mleval.images.decode import decode_rgb
    from mleval.images.probe import probe_image

    try:
        probe_image(data, max_pixels=max_pixels)
    except ImageFileError as error:
        too_big = "decompression bomb" in str(error)
        raise ApiError(413 if too_big else 422, "too_many_pixels" if too_big else "not_an_image", str(error)) from None
    try:
        return decode_rgb(data)
    except Exception as error:
        raise ApiError(422, "not_an_image", f"the image could not be decoded ({error}).") from None
