"""An app's wrong order of calls or wrong clip is the project's one-line error type, not a bare RuntimeError."""

from __future__ import annotations

import numpy as np
import pytest
from ffn_edge.runtime import FFNRuntime

from ffn_edge.core.errors import ClosedError, FFNError, InputError


def test_a_closed_runtime_says_so_in_the_projects_error_type(tiny_bundle) -> None:
    rt = FFNRuntime.open(tiny_bundle, backend="ort-cpu", threads=1)
    n = rt.frame_counts[0]
    h, w = rt.manifest.input.size
    fed = rt.route(n)[1]
    rt.close()
    with pytest.raises(ClosedError, match="closed") as e:
        rt.run(n, np.zeros((1, fed, 3, h, w), np.float32))
    assert isinstance(e.value, FFNError) and isinstance(e.value, RuntimeError)  # apps catching either still work
    with pytest.raises(ClosedError):
        rt.step_graphs()


@pytest.mark.parametrize("clip", [None, [[0.0]], np.zeros((3, 3)), "clip"])
def test_run_on_a_wrong_clip_is_an_input_error(tiny_bundle, clip) -> None:
    with FFNRuntime.open(tiny_bundle, backend="ort-cpu", threads=1) as rt, \
            pytest.raises(InputError, match="run\\(\\) takes"):
        rt.run(rt.frame_counts[0], clip)
