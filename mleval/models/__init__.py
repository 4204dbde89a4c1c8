"""The model zoo, weights resolution and Predictor adapters."""
