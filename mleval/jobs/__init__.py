"""Long-running work on Ray: batch inference (Ray Data) and training (Ray Train)."""
