"""Session fixtures: the test workflow, run once under DVC for the end-to-end and DVC tests."""

from pathlib import Path

import pytest
from workflow_repo import build_repo


@pytest.fixture(scope="session")
def workflow_remote(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("dvc_remote")


@pytest.fixture(scope="session")
def workflow_repo(tmp_path_factory, workflow_remote) -> Path:
    """config/test.yaml through `dvc repro` in a git copy of the repository (one run of the
    whole workflow for the suite)."""
    return build_repo(tmp_path_factory.mktemp("dvc_repo"), workflow_remote)
