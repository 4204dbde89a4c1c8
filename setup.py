"""Packaging beyond what pyproject.toml can say: the repository's ``widgets/`` and ``serve_apps/``
folders install as ``mleval_widgets`` and ``mleval_serve``, names that cannot clash with other
packages (README, "Repository layout"). Everything else is in pyproject.toml."""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["mleval", "mleval.*"]) + ["mleval_widgets", "mleval_serve"],
    package_dir={"mleval_widgets": "widgets", "mleval_serve": "serve_apps"},
    package_data={"mleval_serve": ["*.yaml"]},
)
