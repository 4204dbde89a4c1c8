"""Content-addressed storage of image and model files."""
