"""Connected components: every engine against the networkx oracle (label = smallest key of the component)."""

from __future__ import annotations

import hashlib
import random

import networkx as nx
import pytest
from pyspark.sql.types import StringType, StructField, StructType

from jobs.common.errors import ConfigError, DataError
from jobs.common.spark import GRAPHFRAMES_CLASS, class_loadable
from jobs.match.config import ClusteringConfig
from jobs.match.connected_components import connected_components, graphframes_options

EDGE_SCHEMA = StructType(
    [
        StructField("record_key_l", StringType()),
        StructField("record_key_r", StringType()),
        StructField("edge_type", StringType()),
    ]
)
NODE_SCHEMA = StructType([StructField("record_key", StringType())])


def key(prefix: str, i: int) -> str:
    """Record-key-like strings whose order has nothing to do with i."""
    return hashlib.sha256(f"{prefix}:{i}".encode()).hexdigest()[:16]


def oracle(nodes: list[str], edges: list[tuple[str, str]]) -> dict[str, str]:
    g = nx.Graph()
    g.add_nodes_from(nodes)
    g.add_edges_from(edges)
    out = {}
    for comp in nx.connected_components(g):
        label = min(comp)
        out.update({k: label for k in comp})
    return out


def run(spark, nodes, edges, engine: str, **kw) -> dict[str, str]:  # noqa: ANN001
    e = spark.createDataFrame([(a, b, "probabilistic") for a, b in edges], EDGE_SCHEMA)
    n = spark.createDataFrame([(k,) for k in nodes], NODE_SCHEMA)
    out = connected_components(e, n, ClusteringConfig(engine=engine, **kw), spark)
    assert out.columns == ["record_key", "cluster_id"]
    rows = out.collect()
    result = {r.record_key: r.cluster_id for r in rows}
    assert len(result) == len(rows), "a record appears more than once"
    return result


def random_graph(prefix: str, n: int, m: int, seed: int) -> tuple[list[str], list[tuple[str, str]]]:
    rnd = random.Random(seed)
    nodes = [key(prefix, i) for i in range(n)]
    edges = [(nodes[rnd.randrange(n)], nodes[rnd.randrange(n)]) for _ in range(m)]
    return nodes, edges


def chain(prefix: str, n: int) -> tuple[list[str], list[tuple[str, str]]]:
    nodes = [key(prefix, i) for i in range(n)]
    return nodes, [(nodes[i], nodes[i + 1]) for i in range(n - 1)]


def sorted_chain(prefix: str, n: int) -> tuple[list[str], list[tuple[str, str]]]:
    """A path whose keys increase along it (the worst order for label propagation)."""
    nodes = [f"{prefix}{i:06d}" for i in range(n)]
    return nodes, [(nodes[i + 1], nodes[i]) for i in range(n - 1)]


def star(prefix: str, n: int) -> tuple[list[str], list[tuple[str, str]]]:
    nodes = [key(prefix, i) for i in range(n)]
    return nodes, [(nodes[0], nodes[i]) for i in range(1, n)]


def messy(prefix: str) -> tuple[list[str], list[tuple[str, str]]]:
    """Self-loops, duplicate and reversed edges, isolated nodes, an endpoint missing from nodes."""
    a, b, c, d, e, f = (key(prefix, i) for i in range(6))
    ghost = key(prefix, 99)
    nodes = [a, b, c, d, e, f]
    edges = [(a, a), (a, b), (b, a), (a, b), (c, d), (d, c), (d, d), (e, ghost)]
    return nodes, edges


def combined() -> tuple[list[str], list[tuple[str, str]]]:
    parts = [
        random_graph("sparse", 300, 150, 1),
        random_graph("medium", 200, 220, 2),
        random_graph("dense", 80, 400, 3),
        chain("chain", 400),
        sorted_chain("s", 300),
        star("star", 200),
        messy("messy"),
    ]
    nodes = [k for p in parts for k in p[0]]
    edges = [e for p in parts for e in p[1]]
    return nodes, edges


@pytest.fixture(scope="module")
def graph() -> tuple[list[str], list[tuple[str, str]], dict[str, str]]:
    nodes, edges = combined()
    return nodes, edges, oracle(nodes, edges)


def test_oracle_sanity(graph) -> None:  # noqa: ANN001
    nodes, edges, expected = graph
    chain_nodes = chain("chain", 400)[0]
    assert {expected[k] for k in chain_nodes} == {min(chain_nodes)}
    ghost = key("messy", 99)
    assert expected[ghost] == min(ghost, key("messy", 4))
    assert expected[key("messy", 5)] == key("messy", 5)


def test_scipy_random_graphs(spark) -> None:  # noqa: ANN001
    """Several seeded random graphs of different sizes and densities, solved in one call."""
    parts = [random_graph(f"r{seed}", n, m, seed) for seed, n, m in ((11, 50, 20), (12, 50, 60), (13, 120, 100), (14, 120, 400), (15, 30, 300))]
    nodes = [k for p in parts for k in p[0]]
    edges = [e for p in parts for e in p[1]]
    expected = oracle(nodes, edges)
    assert len(set(expected.values())) > 5  # many components, singletons among them
    assert run(spark, nodes, edges, "scipy") == expected


def test_scipy_combined(spark, graph) -> None:  # noqa: ANN001
    nodes, edges, expected = graph
    assert run(spark, nodes, edges, "scipy") == expected


@pytest.mark.parametrize("checkpoint_every", [1, 2, 3])
def test_star_combined(spark, graph, checkpoint_every) -> None:  # noqa: ANN001
    """Whatever the checkpoint cadence (2 by default, measured faster than 1), the labels are the oracle's."""
    nodes, edges, expected = graph
    assert run(spark, nodes, edges, "star", checkpoint_every=checkpoint_every) == expected


def test_messy_edges_every_engine(spark) -> None:  # noqa: ANN001
    nodes, edges = messy("m2")
    a, b, c, d, e, f = (key("m2", i) for i in range(6))
    ghost = key("m2", 99)
    expected = {a: min(a, b), b: min(a, b), c: min(c, d), d: min(c, d), e: min(e, ghost), ghost: min(e, ghost), f: f}
    assert run(spark, nodes, edges, "scipy") == expected
    assert run(spark, nodes, edges, "auto") == expected  # scipy below the driver limit; star: see the combined graph


def test_no_edges(spark) -> None:  # noqa: ANN001
    nodes = ["b", "a", "c"]
    expected = {"a": "a", "b": "b", "c": "c"}
    assert run(spark, nodes, [], "scipy") == expected
    assert run(spark, nodes, [], "star") == expected
    assert run(spark, [], [], "scipy") == {}


def test_auto_uses_star_above_the_driver_limit(spark) -> None:  # noqa: ANN001
    nodes, edges = star("auto", 30)
    expected = oracle(nodes, edges)
    assert run(spark, nodes, edges, "auto", driver_edge_limit=5) == expected
    assert set(expected.values()) == {min(nodes)}


def test_star_max_iterations_error(spark) -> None:  # noqa: ANN001
    nodes, edges = sorted_chain("x", 64)
    with pytest.raises(DataError, match=r"not converged after 1 rounds \(match.clustering.max_iterations\)"):
        run(spark, nodes, edges, "star", max_iterations=1)


@pytest.mark.parametrize("checkpoint", ["local", "reliable"])
def test_graphframes(spark, checkpoint: str) -> None:  # noqa: ANN001
    nodes, edges = messy("gf")
    if not class_loadable(spark, GRAPHFRAMES_CLASS):
        with pytest.raises(ConfigError, match="GraphFrames jar is not on the classpath"):
            run(spark, nodes, edges, "graphframes", checkpoint=checkpoint)
        pytest.skip("GraphFrames jar not on the classpath")
    assert run(spark, nodes, edges, "graphframes", checkpoint=checkpoint) == oracle(nodes, edges)


def test_graphframes_checkpoints_as_configured_and_refuses_what_cannot_work() -> None:
    """What connectedComponents gets, without the jar: local checkpoints need no checkpoint dir,
    reliable ones the session's (jobs.common.spark sets one under the lake root)."""
    import inspect

    from graphframes import GraphFrame

    local = graphframes_options(ClusteringConfig(engine="graphframes", checkpoint_every=3), False, None)
    assert local == {"checkpointInterval": 3, "broadcastThreshold": -1, "use_local_checkpoints": True}
    reliable = ClusteringConfig(engine="graphframes", checkpoint="reliable")
    assert graphframes_options(reliable, False, "file:/lake/_checkpoints/app-1") == {
        "checkpointInterval": 2, "broadcastThreshold": -1, "use_local_checkpoints": False,
    }  # fmt: skip
    # the installed graphframes-py takes these keywords
    assert set(local) <= set(inspect.signature(GraphFrame.connectedComponents).parameters)
    with pytest.raises(ConfigError) as info:
        graphframes_options(reliable, False, None)
    assert info.value.problems == [
        "match.clustering.checkpoint: got 'reliable' with engine 'graphframes', but the session has no checkpoint "
        "dir; expected checkpoint 'local', or a session with a checkpoint dir (SparkContext.setCheckpointDir)"
    ]
    with pytest.raises(ConfigError) as info:
        graphframes_options(ClusteringConfig(engine="graphframes"), True, None)
    assert info.value.problems == [
        "match.clustering.engine: got 'graphframes' in a Spark Connect session; GraphFrames runs through the JVM of "
        "a classic session (spark-submit, a Databricks job cluster). Expected engine auto, scipy or star over Spark Connect"
    ]
