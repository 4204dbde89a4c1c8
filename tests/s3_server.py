"""A local S3 for tests of workspaces on an object store: moto's server on loopback.

Registered for every test by ``pytest_plugins`` in ``tests/conftest.py``; the server starts
only when a test asks for one of these fixtures. pyarrow does not read AWS_ENDPOINT_URL, so
the endpoint travels as storage options (``S3FileSystem`` arguments), which Ray workers
receive with the workspace's location.
"""

from __future__ import annotations

import logging
import uuid

import pytest


@pytest.fixture(scope="session")
def s3_endpoint():
    """``host:port`` of an S3 server on 127.0.0.1, for the whole session."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"{host}:{port}"
    server.stop()


@pytest.fixture
def s3_options(s3_endpoint):
    """Storage options that reach the local S3 (``pyarrow.fs.S3FileSystem`` arguments)."""
    return {"endpoint_override": s3_endpoint, "scheme": "http", "region": "us-east-1",
            "access_key": "testing", "secret_key": "testing"}


@pytest.fixture
def s3_bucket(s3_options):
    """A new, empty bucket on the local S3; returns its name."""
    import pyarrow.fs as pafs

    name = f"mleval-{uuid.uuid4().hex[:12]}"
    pafs.S3FileSystem(**s3_options, allow_bucket_creation=True).create_dir(name)
    return name
