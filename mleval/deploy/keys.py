"""API keys: shown once when created, stored only as a SHA-256 hash in the deployment's metadata."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from typing import Any

KEY_PREFIX = "mlv_"


def new_api_key() -> str:
    """A fresh random key (256 bits), recognisable by its prefix in logs and secret scanners."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    """Hex SHA-256 of the key: what is stored and compared; the key itself is never kept."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def key_entry(name: str, key: str, created_at: str) -> dict[str, Any]:
    return {"name": name, "sha256": hash_api_key(key), "prefix": key[: len(KEY_PREFIX) + 4], "created_at": created_at}


def key_table(metadatas: Iterable[dict | None]) -> dict[str, str]:
    """``{sha256: key name}`` from the ``api_keys`` lists of every version's metadata."""
    table: dict[str, str] = {}
    for metadata in metadatas:
        for entry in (metadata or {}).get("api_keys", ()):
            table[entry["sha256"]] = entry["name"]
    return table
