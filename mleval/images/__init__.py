"""Image ingest, probing and the ws.images API."""
