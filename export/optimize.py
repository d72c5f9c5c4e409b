"""onnxscript's graph optimisation without its brute-force multi-output pattern rules.

``onnxscript.optimizer.optimize`` (0.7) runs constant folding, its default rewrite rules, then
clean-up passes. One default rule, ``SlicesSplit`` (two Slices of one tensor -> one Split), has a
pattern with two output nodes, which onnxscript matches by trying every pair of candidate nodes: on
a graph with hundreds of Slices that is quadratic and dominated export time (TEA-ResNet-50, whose
Motion Excitation and temporal convolutions add ~200 Slices: 76 s of a graph's optimisation on one
core against ~3 s for TSM-ResNet-18). This runs the same passes in the same order with every
single-output rule and none of the multi-output ones (the rules are listed, not hard-coded, so a
newer onnxscript's rules come along). What the left-out rule would do — fuse two Slices into a
Split — ONNX Runtime's and TensorRT's own graph optimisers decide for themselves.
"""

from __future__ import annotations

import onnx
import onnx_ir as ir
import onnx_ir.passes.common as common_passes
from onnxscript import rewriter
from onnxscript.optimizer import fold_constants_ir


def single_output_rules() -> list:
    """onnxscript's default rewrite rules whose pattern ends in one node (linear-time matching)."""
    rules = []
    for rule in rewriter._DEFAULT_REWRITE_RULES:
        target = getattr(rule, "_target_pattern", None)
        if target is None or target.has_single_output_node:
            rules.append(rule)
    return rules


def optimize(proto: onnx.ModelProto) -> onnx.ModelProto:
    """One pass of fold constants -> rewrite -> remove unused, then onnxscript's clean-up passes."""
    model = ir.serde.deserialize_model(proto)
    common_passes.InlinePass()(model)
    fold_constants_ir(model, onnx_shape_inference=True)
    rewriter.rewrite(model, pattern_rewrite_rules=single_output_rules())
    ir.passes.Sequential(
        common_passes.RemoveUnusedNodesPass(),
        common_passes.LiftConstantsToInitializersPass(lift_all_constants=True, size_limit=0),
        common_passes.LiftSubgraphInitializersToMainGraphPass(),
        common_passes.DeduplicateInitializersPass(),
        common_passes.CommonSubexpressionEliminationPass(),
        common_passes.OutputFixPass(),
        common_passes.NameFixPass(),
    )(model)
    return ir.serde.serialize_model(model)
