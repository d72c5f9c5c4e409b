import numpy as np
import pytest

from ffn_edge.core.sampling import nearest_subnet, segment_indices


@pytest.mark.parametrize(
    ("n", "want"),
    [(1, 4), (2, 4), (4, 4), (5, 4), (6, 8), (7, 8), (8, 8), (11, 8), (12, 16), (13, 16), (16, 16), (40, 16)],
)
def test_nearest_rule_ties_go_to_higher(n: int, want: int) -> None:
    counts = (4, 8, 16)
    assert counts[nearest_subnet(n, counts)] == want


def test_nearest_rule_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        nearest_subnet(0, (4, 8))
    with pytest.raises(ValueError):
        nearest_subnet(4, ())


@pytest.mark.parametrize("num_frames", [1, 3, 16, 37, 300])
@pytest.mark.parametrize("n", [1, 2, 4, 7, 16])
def test_segments_cover_clip_in_order(num_frames: int, n: int) -> None:
    rng = np.random.default_rng(0)
    for train in (False, True):
        idx = segment_indices(num_frames, n, train, rng)
        assert idx.shape == (n,)
        assert idx.min() >= 0 and idx.max() < num_frames
        assert np.all(np.diff(idx) >= 0)
    if num_frames >= n:  # one distinct frame per segment
        assert len(set(segment_indices(num_frames, n, False).tolist())) == n


def test_eval_takes_centre_train_varies() -> None:
    assert segment_indices(100, 4, False).tolist() == [12, 37, 62, 87]
    draws = {tuple(segment_indices(100, 4, True, np.random.default_rng(s))) for s in range(10)}
    assert len(draws) > 1
    for d in draws:  # each draw stays inside its segment
        assert all(25 * i <= v < 25 * (i + 1) for i, v in enumerate(d))
