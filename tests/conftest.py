"""Session fixtures: the test workflow, run once under DVC for the end-to-end and DVC tests.

The suite runs on pytest-xdist workers (pyproject.toml). Every test that reads the workflow
repository goes to one worker, which builds it once, and first: it is the suite's longest piece.
"""

from pathlib import Path

import pytest
from workflow_repo import build_repo

WORKFLOW_GROUP = pytest.mark.xdist_group("workflow_repo")


@pytest.hookimpl(tryfirst=True)     # before xdist reads the group marks
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "workflow_repo" in item.fixturenames:
            item.add_marker(WORKFLOW_GROUP)
    items.sort(key=lambda item: "workflow_repo" not in item.fixturenames)


@pytest.fixture(scope="session")
def workflow_remote(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("dvc_remote")


@pytest.fixture(scope="session")
def workflow_repo(tmp_path_factory, workflow_remote) -> Path:
    """config/test.yaml through `dvc repro` in a git copy of the repository (one run of the
    whole workflow for the suite)."""
    return build_repo(tmp_path_factory.mktemp("dvc_repo"), workflow_remote)
