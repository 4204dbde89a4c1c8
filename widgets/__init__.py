"""Notebook UI for mleval (ipywidgets, jupyter-bbox-widget). Drives the Workspace API only."""

from widgets.annotator import Annotator
from widgets.comparison import ComparisonView
from widgets.deployment_panel import DeploymentPanel
from widgets.gallery import Gallery
from widgets.job_monitor import JobMonitor
from widgets.uploader import Uploader

__all__ = ["Annotator", "ComparisonView", "DeploymentPanel", "Gallery", "JobMonitor", "Uploader"]
