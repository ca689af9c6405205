"""A real two-node Ray cluster (Ray's own cluster_utils: two raylets on one machine): the
engine joins it by address, checks that both nodes see the artifact cache, and runs there.

Its own module: it starts and stops its cluster, which must not meet tests/test_engine.py's
shared local instance.
"""

from __future__ import annotations

import pytest
import ray
from support.isolated_runs import run_isolated


def test_a_two_node_cluster_checks_its_shared_cache_and_runs_on_both_nodes(toy, tmp_path):
    """Two real raylets (Ray's own cluster_utils, one machine): the start-up check reads the
    cache probe on both nodes, and the run joins the cluster by its address."""
    from ray.cluster_utils import Cluster

    from privbench.api.errors import ConfigError
    from privbench.engine.ray_engine import worker_pythonpath

    if ray.is_initialized():
        ray.shutdown()
    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 1,
            "env_vars": {"PYTHONPATH": worker_pythonpath()},
        },
    )
    try:
        cluster.add_node(num_cpus=1, env_vars={"PYTHONPATH": worker_pythonpath()})
        cluster.wait_for_nodes()
        with pytest.raises(ConfigError, match="no node of the Ray cluster has that many"):
            run_isolated(toy.toy_spec(), tmp_path, "too-big", address=cluster.address)  # 2 CPUs
        report = run_isolated(
            toy.toy_spec(), tmp_path, "cluster", address=cluster.address, cpus_per_cell=1
        )
        assert report.failures == [] and report.ran == 6
        assert "2 node(s)" in report.engine
        assert not list((tmp_path / "cache-cluster").glob(".shared-probe-*"))  # cleaned up
    finally:
        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()
