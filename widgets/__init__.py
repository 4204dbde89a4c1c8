"""Notebook UI for mleval (ipywidgets, jupyter-bbox-widget). Drives the Workspace API only."""
