"""INT8 bundles' quantization scales are checked at open (ffn_edge/bundle/quant_scales.py).

A re-sealed bundle with a zero, negative, infinite or NaN Q/DQ scale passes every file check and ONNX
Runtime runs it to finite, wrong labels; these tests fail where such a bundle opens.
"""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pytest
from ffn_edge.runtime import FFNRuntime

from ffn_edge.bundle.manifest import seal
from ffn_edge.bundle.onnx_refs import read_qdq_scales
from ffn_edge.core.errors import BundleError


def _set_scale(bundle, value) -> str:
    """Set one element of the first Q/DQ scale of the first graph to ``value``; re-hash and re-seal."""
    import onnx
    from onnx import numpy_helper

    m = json.loads((bundle / "manifest.json").read_text())
    rel = m["graphs"][0]["file"]
    proto = onnx.load(str(bundle / rel), load_external_data=False)
    names = {n.input[1] for n in proto.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")}
    t = next(t for t in proto.graph.initializer if t.name in names and not t.external_data)
    arr = numpy_helper.to_array(t).astype(np.float32).copy()
    arr.flat[0] = value
    t.CopyFrom(numpy_helper.from_array(arr, t.name))
    onnx.save_model(proto, str(bundle / rel))
    data = (bundle / rel).read_bytes()
    m["files"][rel] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    (bundle / "manifest.json").write_text(json.dumps(seal(m)))
    return t.name


def test_every_scale_of_the_int8_bundle_is_read(int8_bundle):
    import onnx

    m = json.loads((int8_bundle / "manifest.json").read_text())
    rel = m["graphs"][0]["file"]
    proto = onnx.load(str(int8_bundle / rel), load_external_data=False)
    names = {n.input[1] for n in proto.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")}
    inline = {t.name for t in proto.graph.initializer if t.name in names and not t.external_data}
    scales = read_qdq_scales((int8_bundle / rel).read_bytes())
    assert inline and set(scales) == inline
    assert all(np.isfinite(v).all() and (v > 0).all() for v in scales.values())


@pytest.mark.parametrize("value", [math.nan, 0.0, -1.0, math.inf, -math.inf])
def test_a_bad_scale_is_refused_at_open(int8_bundle, private_copy, value):
    b = private_copy(int8_bundle)
    name = _set_scale(b, value)
    with pytest.raises(BundleError, match="quantization scale") as e:
        FFNRuntime(b, threads=1, warmup=False)
    assert name[:40] in str(e.value) and "\n" not in str(e.value)


def test_a_changed_but_valid_scale_opens(int8_bundle, private_copy):
    b = private_copy(int8_bundle)
    _set_scale(b, 0.5)
    with FFNRuntime(b, threads=1, warmup=False) as rt:
        assert rt.manifest.precision == "int8"


def test_a_graph_that_loads_but_cannot_compute_is_one_bundle_line(int8_bundle, private_copy):
    """A huge but valid scale on the pooled features: ORT fuses it into QLinearGlobalAveragePool, which
    then refuses to run ("parameter out of computation range"): a BundleError naming the graph, not ORT's
    RuntimeException."""
    import onnx
    from onnx import numpy_helper

    b = private_copy(int8_bundle)
    m = json.loads((b / "manifest.json").read_text())
    rel = m["graphs"][0]["file"]
    proto = onnx.load(str(b / rel), load_external_data=False)
    pooled = next(n.output[0] for n in proto.graph.node if n.op_type == "GlobalAveragePool")
    scale = next(n.input[1] for n in proto.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == pooled)
    t = next(t for t in proto.graph.initializer if t.name == scale)
    t.CopyFrom(numpy_helper.from_array(np.full(numpy_helper.to_array(t).shape, 1e38, np.float32), scale))
    onnx.save_model(proto, str(b / rel))
    data = (b / rel).read_bytes()
    m["files"][rel] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    (b / "manifest.json").write_text(json.dumps(seal(m)))
    frames = m["graphs"][0]["frames"]
    with FFNRuntime(b, threads=1, warmup=False) as rt, pytest.raises(BundleError, match="failed running it") as e:
        rt.predict([np.full((40, 48, 3), 100, np.uint8)] * frames, n=frames)
    assert rel in str(e.value) and "\n" not in str(e.value)
