"""A Ray cluster of several nodes on this one machine, to try `--executor ray` without one.

Stage: run. `python -m compare.run.local_cluster --nodes 2 --cpus 1` starts the nodes
(each a study node: it offers `ray_executor.NODE_RESOURCE`), prints the address to pass
as `--ray-address`, and stops them on Ctrl-C. The nodes share this machine's cores, so
this shows that the executor works across nodes, not that it is faster. The tests'
cluster (`tests/conftest.py`) is this one.
"""

from __future__ import annotations

import argparse
import os
import signal

from compare.run.ray_executor import NODE_RESOURCE, OBJECT_STORE_BYTES


def start(nodes: int = 2, cpus: int = 1):
    """Start the cluster (`ray.cluster_utils.Cluster`); the caller shuts it down."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    from ray.cluster_utils import Cluster

    node = {
        "num_cpus": cpus,
        "num_gpus": 0,
        "resources": {NODE_RESOURCE: 1},
        "object_store_memory": OBJECT_STORE_BYTES,
    }
    cluster = Cluster(
        initialize_head=True, connect=False, head_node_args={**node, "include_dashboard": False}
    )
    try:
        for _ in range(nodes - 1):
            cluster.add_node(**node)
        cluster.wait_for_nodes()
    except BaseException:
        cluster.shutdown()
        raise
    return cluster


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--cpus", type=int, default=1, help="CPUs each node offers")
    args = parser.parse_args()
    # Ctrl-C or a plain kill stops the nodes (a shell's background job ignores SIGINT).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    cluster = start(args.nodes, args.cpus)
    print(f"{args.nodes} nodes up: --ray-address {cluster.address}   (Ctrl-C stops them)")
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        cluster.shutdown()


if __name__ == "__main__":
    main()
