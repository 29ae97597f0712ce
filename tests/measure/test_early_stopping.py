"""Early-stopping counts and estimates match MLPerf LoadGen's."""

from __future__ import annotations

import numpy as np
import pytest

from infertune.measure.early_stopping import (
    meets_latency_target,
    min_passing,
    min_queries,
    percentile_upper_bound,
)


def test_min_queries_are_loadgens() -> None:
    # LoadGen prints "Processed at least 64 queries" for p90 and needs 662 for p99.
    assert min_queries(0.90) == 64
    assert min_queries(0.99) == 662
    # With nothing over the latency, ceil(log(0.01) / log(p)) queries suffice.
    assert min_passing(0, 0.99) == 459


@pytest.mark.parametrize(("n", "discarded"), [(2048, 172), (2116, 178), (7469, 685)])
def test_upper_bound_discards_what_loadgen_discards(n: int, discarded: int) -> None:
    # From LoadGen summaries: "Processed ... (n). Would discard k highest latency queries."
    latencies = list(range(n))
    bound = percentile_upper_bound(latencies, 0.90)
    assert bound is not None
    assert n - 1 - bound == discarded


def test_upper_bound_is_above_the_plain_percentile_and_none_when_too_few() -> None:
    latencies = np.random.default_rng(0).exponential(1.0, 3000)
    bound = percentile_upper_bound(latencies, 0.99)
    assert bound is not None
    assert bound > np.percentile(latencies, 99)
    assert percentile_upper_bound(latencies[:600], 0.99) is None


def test_latency_target_needs_enough_queries_for_the_overlatency_count() -> None:
    under = [1.0] * 700
    assert meets_latency_target(under, 2.0, 0.99) == (True, 0)
    met, more = meets_latency_target(under[:400], 2.0, 0.99)
    assert not met and more == 59  # 459 needed with none over
    # 5 over the target: more queries are needed than with none.
    met, more = meets_latency_target(under + [3.0] * 5, 2.0, 0.99)
    assert not met and more > 0
    assert min_passing(5, 0.99) > min_passing(0, 0.99)
