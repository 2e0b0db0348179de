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
