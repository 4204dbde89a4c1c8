"""Notebook UI for mleval (ipywidgets, jupyter-bbox-widget). Drives the Workspace API only."""

from .annotator import Annotator
from .comparison import ComparisonView
from .deployment_panel import DeploymentPanel
from .error_browser import ErrorBrowser
from .gallery import Gallery
from .job_monitor import JobMonitor
from .uploader import Uploader

__all__ = ["Annotator", "ComparisonView", "DeploymentPanel", "ErrorBrowser", "Gallery", "JobMonitor", "Uploader"]
