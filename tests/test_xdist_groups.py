"""``make pytest`` runs with ``--dist loadgroup``: tests marked ``xdist_group`` share a worker
(the modules that compile programs or build a site once per worker rely on it). pytest-xdist
3.8 marks a grouped test by a ``@<group>`` suffix of its node id, which pytest 9 no longer lets
it set: the groups are then silently ignored. This test notices."""

from __future__ import annotations

import pytest


@pytest.mark.xdist_group("probe")
def test_xdist_groups_are_honoured(request: pytest.FixtureRequest) -> None:
    if not getattr(request.config.option, "loadgroup", False):
        pytest.skip("not run by pytest-xdist with --dist loadgroup")
    assert request.node.nodeid.endswith("@probe"), (
        f"pytest-xdist ignored the xdist_group mark (node id {request.node.nodeid!r}); "
        "see the pytest pin in constraints.txt")


def test_each_xdist_worker_runs_its_share_of_the_cores() -> None:
    import os

    import torch

    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 0)
    if workers < 2:
        pytest.skip("not under pytest-xdist with two or more workers")
    share = max(1, (os.cpu_count() or 1) // workers)
    assert torch.get_num_threads() == share  # conftest._share_the_cores_between_workers
    assert os.environ["TF_NUM_INTRAOP_THREADS"] and os.environ["OMP_NUM_THREADS"]
