"""Accuracy metrics for entity resolution, computed from counts so they scale to millions of records.

Two families, both against a ground truth that assigns every record to one true entity:

Pairwise (from predicted links)
    The predicted links are the scored pairs at or above a threshold, exactly as a tool emits them
    (before clustering). True pairs are all pairs of records within one true entity. This is the
    figure Splink's FEBRL4 example reports (0.9992 at probability 0.5): one pair per true link.

Cluster metrics (from predicted clusters)
    * ``pairwise`` - the pairs *implied* by the predicted clusters (every two records in one
      predicted cluster) against the true pairs. This is what we call **"cluster F1"**: it is the
      measure behind Splink's published FEBRL3 figure (0.9972 at 0.5), it punishes over-merging
      quadratically, and it equals the pairwise figure when clustering adds no transitive links.
    * ``bcubed`` - B-cubed precision/recall/F1 (Bagga and Baldwin, 1998, "Entity-based
      cross-document coreferencing using the vector space model"; see also Amigo et al., 2009,
      "A comparison of extrinsic clustering evaluation metrics based on formal constraints").
      Per record: precision = |pred(r) ∩ true(r)| / |pred(r)|, recall = |pred(r) ∩ true(r)| /
      |true(r)|, averaged over records. It weighs every record equally, so one giant wrong
      cluster hurts it less than it hurts pairwise-from-clusters.

No pairs are ever materialised. With n_ij the number of records in true entity i and predicted
cluster j (the contingency table), a_j the predicted cluster sizes and b_i the true entity sizes:

    true positive pairs  = sum_ij C(n_ij, 2)
    predicted pairs      = sum_j  C(a_j, 2)
    true pairs           = sum_i  C(b_i, 2)
    B-cubed precision    = (1/N) sum_ij n_ij^2 / a_j
    B-cubed recall       = (1/N) sum_ij n_ij^2 / b_i

Only the non-empty cells of the contingency table are built (one ``np.unique`` over N integer
keys), so the cost is O(N log N) in time and O(N) in memory.

Conventions: the universe is the set of records in the ground truth. Predicted records outside it
are ignored (and counted); records of the universe a tool did not cluster are singletons. A ratio
whose denominator is zero (nothing predicted, or nothing to find) is 1.0: no error of that kind
was made. F1 is 0 when precision and recall are both 0.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "PairScores",
    "ClusterScores",
    "pairwise_from_links",
    "cluster_metrics",
    "clusters_from_links",
    "pairs_count",
]


def pairs_count(sizes: np.ndarray) -> int:
    """Sum of C(n, 2) over the given group sizes, exactly (int64 holds C(3e9, 2) comfortably)."""
    s = np.asarray(sizes, dtype=np.int64)
    return int((s * (s - 1) // 2).sum())


def _ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den else 1.0


def _f1(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if (precision + recall) > 0 else 0.0


@dataclass(frozen=True)
class PairScores:
    """Precision, recall and F1 over record pairs, with the counts they come from."""

    true_positives: int
    predicted_pairs: int
    true_pairs: int

    @property
    def precision(self) -> float:
        return _ratio(self.true_positives, self.predicted_pairs)

    @property
    def recall(self) -> float:
        return _ratio(self.true_positives, self.true_pairs)

    @property
    def f1(self) -> float:
        return _f1(self.precision, self.recall)

    def to_dict(self) -> dict[str, Any]:
        return {"precision": self.precision, "recall": self.recall, "f1": self.f1, **asdict(self)}


@dataclass(frozen=True)
class BCubedScores:
    """B-cubed precision and recall (record-averaged)."""

    precision: float
    recall: float

    @property
    def f1(self) -> float:
        return _f1(self.precision, self.recall)

    def to_dict(self) -> dict[str, Any]:
        return {"precision": self.precision, "recall": self.recall, "f1": self.f1}


@dataclass(frozen=True)
class ClusterScores:
    """Cluster metrics: pairs implied by the clusters ("cluster F1") and B-cubed."""

    pairwise: PairScores
    bcubed: BCubedScores
    records: int
    predicted_clusters: int
    true_clusters: int
    unclustered_records: int
    ignored_records: int

    def to_dict(self) -> dict[str, Any]:
        """The summary.json form: the top-level precision/recall/f1 are pairwise-from-clusters."""
        out = self.pairwise.to_dict()
        out["measure"] = "pairs implied by predicted clusters vs true pairs"
        out["bcubed"] = self.bcubed.to_dict()
        out.update(
            records=self.records,
            predicted_clusters=self.predicted_clusters,
            true_clusters=self.true_clusters,
            unclustered_records=self.unclustered_records,
            ignored_records=self.ignored_records,
        )
        return out


def _truth_codes(truth: pd.Series) -> tuple[pd.Index, np.ndarray]:
    """Record index and integer entity code per record; duplicate record ids are a caller bug."""
    if not truth.index.is_unique:
        dupes = truth.index[truth.index.duplicated()].unique()[:5].tolist()
        raise ValueError(f"ground truth has duplicate record ids, e.g. {dupes}; expected one entity per record")
    if truth.isna().any():
        raise ValueError("ground truth has records without an entity; expected every record to have one")
    codes, _ = pd.factorize(truth, sort=False)
    return pd.Index(truth.index), codes.astype(np.int64)


def pairwise_from_links(links: pd.DataFrame | Iterable[tuple[Any, Any]], truth: pd.Series) -> PairScores:
    """Score predicted links (record id pairs, any order, duplicates allowed) against the truth.

    ``links`` is a two-column frame (first two columns are the ids) or an iterable of pairs;
    ``truth`` maps record id -> true entity. Links touching records outside the truth are ignored,
    self-links are ignored, and (a, b) / (b, a) count once.
    """
    index, ent = _truth_codes(truth)
    true_pairs = pairs_count(np.bincount(ent)) if len(ent) else 0
    frame = links if isinstance(links, pd.DataFrame) else pd.DataFrame(list(links), columns=["l", "r"])
    if frame.shape[0] == 0:
        return PairScores(0, 0, true_pairs)
    left = index.get_indexer(frame.iloc[:, 0])
    right = index.get_indexer(frame.iloc[:, 1])
    keep = (left >= 0) & (right >= 0) & (left != right)
    lo = np.minimum(left[keep], right[keep]).astype(np.int64)
    hi = np.maximum(left[keep], right[keep]).astype(np.int64)
    key = np.unique(lo * np.int64(len(index)) + hi)
    lo, hi = key // len(index), key % len(index)
    tp = int(np.count_nonzero(ent[lo] == ent[hi]))
    return PairScores(tp, int(key.size), true_pairs)


def cluster_metrics(predicted: pd.Series, truth: pd.Series) -> ClusterScores:
    """Score a clustering (record id -> cluster label) against the truth (record id -> entity).

    Records of the truth missing from ``predicted`` are singletons; predicted records outside the
    truth are ignored. Labels may be of any hashable type.
    """
    index, ent = _truth_codes(truth)
    n = len(index)
    if not predicted.index.is_unique:
        dupes = predicted.index[predicted.index.duplicated()].unique()[:5].tolist()
        raise ValueError(f"predicted clusters list a record twice, e.g. {dupes}; expected one cluster per record")
    ignored = int((~predicted.index.isin(index)).sum())
    aligned = predicted.reindex(index)
    pred_codes, _ = pd.factorize(aligned, sort=False)  # NaN -> -1
    pred_codes = pred_codes.astype(np.int64)
    missing = pred_codes < 0
    unclustered = int(missing.sum())
    next_code = (pred_codes.max() + 1) if n and (~missing).any() else 0
    pred_codes[missing] = np.arange(next_code, next_code + unclustered, dtype=np.int64)
    if n == 0:
        return ClusterScores(PairScores(0, 0, 0), BCubedScores(1.0, 1.0), 0, 0, 0, 0, ignored)

    a = np.bincount(pred_codes)  # predicted cluster sizes
    b = np.bincount(ent)  # true entity sizes
    n_pred = np.int64(a.size)
    cells, n_ij = np.unique(ent * n_pred + pred_codes, return_counts=True)
    cell_ent, cell_pred = cells // n_pred, cells % n_pred
    n_ij = n_ij.astype(np.int64)

    pairs = PairScores(pairs_count(n_ij), pairs_count(a), pairs_count(b))
    sq = (n_ij * n_ij).astype(np.float64)
    bcubed = BCubedScores(
        precision=float((sq / a[cell_pred]).sum() / n),
        recall=float((sq / b[cell_ent]).sum() / n),
    )
    return ClusterScores(
        pairwise=pairs,
        bcubed=bcubed,
        records=n,
        predicted_clusters=int(np.count_nonzero(a)),
        true_clusters=int(np.count_nonzero(b)),
        unclustered_records=unclustered,
        ignored_records=ignored,
    )


def clusters_from_links(records: Iterable[Any] | pd.Index, links: pd.DataFrame) -> pd.Series:
    """Connected components of the link graph: record id -> cluster label (smallest member id).

    Used to derive clusters at a second threshold from one set of scored pairs, which is exactly
    what Splink's ``cluster_pairwise_predictions_at_threshold`` computes (connected components),
    without running the tool again. Links naming records not in ``records`` are ignored.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    index = pd.Index(pd.unique(pd.Series(list(records) if not isinstance(records, pd.Index) else records)))
    n = len(index)
    if n == 0:
        return pd.Series([], dtype=object)
    left = index.get_indexer(links.iloc[:, 0]) if len(links) else np.array([], dtype=np.int64)
    right = index.get_indexer(links.iloc[:, 1]) if len(links) else np.array([], dtype=np.int64)
    keep = (left >= 0) & (right >= 0)
    graph = coo_matrix((np.ones(int(keep.sum()), dtype=np.int8), (left[keep], right[keep])), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    ids = pd.Series(index, index=index)
    smallest = ids.groupby(labels).transform("min")
    return pd.Series(smallest.to_numpy(), index=index, name="cluster_id")
