"""Deploying models on Ray Serve: ``deploy(ws, model, ...)`` returns a DeploymentHandle."""

from mleval.deploy.deployments import (
    DeploymentCollection,
    DeploymentHandle,
    DeploymentRecord,
    deploy,
    get_deployment,
    list_deployments,
)

__all__ = ["DeploymentCollection", "DeploymentHandle", "DeploymentRecord", "deploy", "get_deployment",
           "list_deployments"]
