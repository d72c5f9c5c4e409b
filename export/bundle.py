"""``export_bundle``: checkpoint -> bundle directory (see ``ffn_edge.bundle.manifest``), atomically.

Order of work: validate arguments and the output path (fail fast), load the checkpoint, export one
graph per frame count (or per sub-network with a dynamic frame dimension) and, for a causal
checkpoint, one step graph per sub-network used (``step``: automatic, they cost a few KB each and are
what the model was trained to run as), move shared tensors
into one weight file, run the ONNX checker on every graph, prove every shared tensor is stored
once, check parity against PyTorch, write the manifest and re-read it with hash verification,
optionally build TensorRT engines. All of it happens in a temporary directory next to ``out`` that
is swapped into place only at the end (``runtime.atomic.staging_dir``/``replace_dir``: one atomic exchange with an
old ``--force``d bundle), so a crash at any point leaves at ``out`` the old bundle, the new one, or
(for a first export) nothing. Stale temporaries of an earlier crashed export are removed first.
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnx
import onnxruntime
import torch
from onnx import numpy_helper

from .. import __version__
from ..bundle.accuracy import ACCURACY_KEY, AccuracySpec
from ..bundle.manifest import GraphEntry, InputSpec, Manifest, file_entry, load_manifest, write_manifest
from ..bundle.sections import PRECISION_KEY, QUANT_KEY, STEP_KEY, STEP_SUBNET_META, StepBuffer
from ..checkpoint import CheckpointMeta, load_checkpoint
from ..core.atomic import cleanup_stale, discard, replace_dir, staging_dir
from ..core.sampling import nearest_subnet
from ..models import VideoClassifier
from . import frame_dim as fd
from .errors import ExportError
from .fold import choose_conv_copies, conv_norms, fold_norms
from .int8 import quantize_graphs
from .int8_config import Int8Options
from .onnx_export import DEFAULT_OPSET, GRAPH_PREFIX, INPUT_NAME, OUTPUT_NAME, export_graph
from .share import check_int8_external, check_shared, share_weights
from .step import STEP_INPUT, export_step_graph, step_file, step_parity
from .validate import (
    DEFAULT_FOLD_BUDGET,
    check_checkpoint_path,
    check_fold_budget,
    check_opset,
    check_out,
    check_verify_clips,
    parse_frames,
)
from .verify import TOLERANCE, check_graph, dataset_clips, parity, resample, synthetic_clips

WEIGHTS_FILE = "weights.bin"
FrameDim = Literal["static", "dynamic", "auto"]


@dataclasses.dataclass(frozen=True)
class VerifyData:
    """Real clips to verify with: a TSM-style list file, its root, and ``frames`` or ``video``."""

    list_file: str
    root: str
    kind: str = "frames"


def _plan(frames: tuple[int, ...], counts: tuple[int, ...], dynamic: bool) -> list[tuple[int, int, str, int]]:
    """(frames, subnet, file, traced frames) per requested frame count."""
    plan = []
    for n in frames:
        k = nearest_subnet(n, counts)
        if dynamic:  # one graph per sub-network, traced at its own frame count, serving any T
            plan.append((n, k, f"subnet{k}_t{counts[k]}.onnx", counts[k]))
        else:
            plan.append((n, k, f"f{n}.onnx", n))
    return plan


def _choose_frame_dim(model: VideoClassifier, frame_dim: FrameDim, frames: tuple[int, ...], size: tuple[int, int],
                      opset: int) -> tuple[bool, dict[str, Any]]:
    if frame_dim == "auto":
        n = frames[len(frames) // 2]
        lat = fd.measure(model, model.subnet_for(n), n, size, opset=opset)
        choice = fd.choose(lat)
        return choice == "dynamic", {"choice": choice, "source": "measured at export (ORT CPU, batch 1)",
                                     "frames": n, "latency_ms": lat}
    if frame_dim not in ("static", "dynamic"):
        raise ExportError(f"--frame-dim must be static, dynamic or auto, got {frame_dim!r}")
    return frame_dim == "dynamic", {"choice": frame_dim, "source": "flag" if frame_dim != fd.DEFAULT_CHOICE
                                    else "default", "default_rationale": fd.RATIONALE}


def _verify_clips(meta: CheckpointMeta, frames: int, n: int, data: VerifyData | None) -> np.ndarray:
    args = (frames, meta.input_size, meta.resize_shorter, meta.mean, meta.std)
    if data is not None:
        return dataset_clips(data.list_file, data.root, data.kind, n, *args)
    return synthetic_clips(n, *args)


def _fold_norms(graphs: dict[str, onnx.ModelProto], subnet_of: dict[str, int], params: set[str], budget: float,
                bias_first: bool) -> dict[str, Any]:
    """Fold every graph's conv-following norms (``fold.fold_norms``), one choice of copies for all.

    The copies are chosen once for the bundle (a copy is only worth its bytes when no graph keeps
    the shared weight alive); their extra bytes are counted against ``budget`` x the shared weights.
    """
    first = next(iter(graphs.values()))
    shared_bytes = sum(numpy_helper.to_array(t).nbytes for t in first.graph.initializer if t.name in params)
    candidates = {c.weight: c for c in conv_norms(first)}
    subnets = len(set(subnet_of.values()))
    copies = choose_conv_copies(list(candidates.values()), subnets, budget, shared_bytes)
    reports = {file: dataclasses.asdict(fold_norms(proto, subnet_of[file], copies, bias_first))
               for file, proto in graphs.items()}
    copy_bytes = sum(candidates[w].weight_bytes for w in copies)
    return {
        "form": "conv copy per sub-network where chosen, else " + ("Add(shift/scale) then Mul(scale)" if bias_first
                                                                    else "Mul(scale) then Add(shift)"),
        "conv_copy_budget": budget, "conv_copies": copies, "conv_copy_bytes": copy_bytes,
        "extra_bytes": (subnets - 1) * copy_bytes, "shared_param_bytes": shared_bytes, "graphs": reports,
    }


def _parity_fp32(model: VideoClassifier, plan: list[tuple[int, int, str, int]], graphs: dict[str, onnx.ModelProto],
                 clips: np.ndarray, scratch: Path, steps: dict[int, tuple[str, list[StepBuffer]]],
                 counts: tuple[int, ...]) -> dict[str, Any]:
    """The FP32 parity check of an INT8 export, run on the FP32 graphs (step graphs too) before they are quantized."""
    scratch.mkdir()
    try:
        checks = {}
        for n, k, file, _ in plan:
            if not (scratch / file).exists():
                onnx.save_model(graphs[file], str(scratch / file))
            checks[str(n)] = _checked(parity(model, k, scratch / file, resample(clips, n)), f"{n} frames ({file}, "
                                      f"sub-network {k})")
        for file, _ in steps.values():
            onnx.save_model(graphs[file], str(scratch / file))
        checks.update(_step_parity(model, steps, scratch, clips, counts))
        return checks
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _step_parity(model: VideoClassifier, steps: dict[int, tuple[str, list[StepBuffer]]], folder: Path,
                 clips: np.ndarray, counts: tuple[int, ...]) -> dict[str, Any]:
    """Each FP32 step graph in ``folder``: a clip's frames one by one == the PyTorch clip (``step.step_parity``)."""
    checks = {}
    for k, (file, buffers) in steps.items():
        p = step_parity(model, k, folder / file, buffers, resample(clips, counts[k]))
        checks[f"step_subnet{k}"] = dataclasses.asdict(p)
        if not p.ok:
            raise ExportError(
                f"verification failed for {file} ({counts[k]} frames one by one): max |logit diff| "
                f"{p.max_abs_diff:.3g} (limit {TOLERANCE:g}), top-1 {'equal' if p.top1_equal else 'differs'}"
            )
    return checks


def _checked(p: Any, what: str) -> dict[str, Any]:
    if not p.ok:
        raise ExportError(f"verification failed for {what}: max |logit diff| {p.max_abs_diff:.3g} "
                          f"(limit {TOLERANCE:g}), top-1 {'equal' if p.top1_equal else 'differs'}")
    return dataclasses.asdict(p)


def _build(model: VideoClassifier, meta: CheckpointMeta, ckpt: Path, frames: tuple[int, ...], tmp: Path,
           o: ExportOptions) -> Manifest:
    verify, opset, n_verify, verify_data, int8 = o.verify, o.opset, o.n_verify, o.verify_data, o.int8
    counts = model.frame_counts or meta.config.frame_counts
    size = (meta.input_size, meta.input_size)
    dynamic, frame_note = _choose_frame_dim(model, o.frame_dim, frames, size, opset)
    plan = _plan(frames, counts, dynamic)

    graphs, folding, subnet_of = {}, {}, {}
    for _, k, file, traced in plan:
        if file not in graphs:
            graphs[file], report = export_graph(model, k, traced, size, dynamic_frames=dynamic, opset=opset)
            folding[file] = {**dataclasses.asdict(report), "wa_kept": report.wa_kept}
            subnet_of[file] = k
    steps: dict[int, tuple[str, list[StepBuffer]]] = {}
    if meta.config.shift == "causal":  # automatic: a causal model is trained to run online
        for k in sorted(set(subnet_of.values())):
            file = step_file(k)
            graphs[file], report, buffers = export_step_graph(model, k, size, opset=opset)
            folding[file] = {**dataclasses.asdict(report), "wa_kept": report.wa_kept}
            subnet_of[file] = k
            steps[k] = (file, buffers)
    params = {f"{GRAPH_PREFIX}{name}" for name in model.state_dict()}
    fold_all = int8 is not None and int8.config.layout == "folded"  # every norm into per-sub-network weights
    norms = _fold_norms(graphs, subnet_of, params, math.inf if fold_all else o.fold_budget, o.bias_first)
    if fold_all:
        norms["conv_copy_budget"] = "all (--int8-layout folded)"
    checks: dict[str, Any] = {}
    clips = _verify_clips(meta, max(max(frames), max(counts)), n_verify, verify_data) if verify else None
    quantization = None
    if int8 is not None:
        if clips is not None:
            checks = _parity_fp32(model, plan, graphs, clips, tmp / "fp32-check", steps, counts)
        graphs, quantization = quantize_graphs(graphs, plan, subnet_of, meta, int8, tmp, clips,
                                               {file: buffers for file, buffers in steps.values()})
    sharing = share_weights(graphs, tmp, WEIGHTS_FILE, params)
    for k, (file, _) in steps.items():  # the runtime refuses a step graph listed for another sub-network
        onnx.helper.set_model_props(graphs[file], {STEP_SUBNET_META: str(k)})
    for file, proto in graphs.items():
        onnx.save_model(proto, str(tmp / file))
        check_graph(tmp / file)
    stored = check_shared(tmp, WEIGHTS_FILE, list(graphs))
    if quantization is not None:
        refs, stored_int8 = check_int8_external(tmp, list(graphs))
        quantization.update(int8_weight_references=refs, int8_tensors_stored=stored_int8)

    if clips is not None:
        for n, k, file, _ in plan if int8 is None else ():  # INT8: checked in FP32 above, then agreement
            checks[str(n)] = _checked(parity(model, k, tmp / file, resample(clips, n)),
                                      f"{n} frames ({file}, sub-network {k})")
        if int8 is None:  # INT8: FP32 step parity above, then agreement with the INT8 clip graph
            checks.update(_step_parity(model, steps, tmp, clips, counts))

    files = {rel: file_entry(tmp / rel) for rel in sorted({WEIGHTS_FILE, *graphs})}
    extra = {
        "exporter": {"ffn_edge": __version__, "torch": torch.__version__, "onnx": onnx.__version__,
                     "onnxruntime": onnxruntime.__version__, "path": "torch.onnx (TorchScript) + onnxscript optimizer",
                     "checkpoint": ckpt.name, "checkpoint_extra": meta.extra},
        "frame_map": {str(n): {"subnet": k, "subnet_frames": counts[k]} for n, k, _, _ in plan},
        "frame_dim": frame_note,
        "folding": {"batchnorm": norms, "weight_alteration": folding},
        "sharing": {"shared_tensors": stored.tensors, "shared_bytes": stored.bytes, "references": stored.references,
                    "weights_file_bytes": sharing.weights_file_bytes, "inline_bytes": sharing.inline_bytes},
        "verification": {"tolerance": TOLERANCE, "clips": "dataset" if verify_data else "synthetic",
                         "graphs": checks} if verify else {"skipped": True},
    }
    if o.accuracy is not None:
        extra[ACCURACY_KEY] = o.accuracy.to_json()
    if quantization is not None:
        extra.update({PRECISION_KEY: "int8", QUANT_KEY: quantization})
    if steps:
        extra[STEP_KEY] = {"input": STEP_INPUT, "output": OUTPUT_NAME, "graphs": [
            {"subnet": k, "file": file, "buffers": [dataclasses.asdict(b) for b in buffers]}
            for k, (file, buffers) in steps.items()], "precision": "fp32" if int8 is None else "int8"}
    return Manifest(
        arch=meta.config.arch,
        model_config=meta.config.to_dict(),
        subnet_frame_counts=tuple(counts),
        graphs=tuple(GraphEntry(n, k, file, dynamic) for n, k, file, _ in plan),
        weights_file=WEIGHTS_FILE,
        input=InputSpec(INPUT_NAME, "NTCHW", size, meta.resize_shorter, tuple(meta.mean), tuple(meta.std)),
        output_name=OUTPUT_NAME,
        class_names=tuple(meta.class_names),
        opset=opset,
        files=files,
        extra=extra,
    )


@dataclasses.dataclass(frozen=True)
class ExportOptions:
    """How ``export_bundle`` exports, every default in one place (``ffn-export``'s flags map onto it).

    ``fold_budget``: extra weight bytes (a fraction of the shared ones) the bundle may spend on
    per-sub-network convolution copies with the norm folded in (``fold.choose_conv_copies``).
    ``bias_first``: export the other norms as Add then Mul (``fold.fold_norms``); False gives the
    older Mul then Add form, kept to measure against.
    ``int8``: quantize every graph to QDQ INT8 (``export.int8``); the FP32 parity check then runs
    before quantization, and each INT8 graph must agree with its FP32 graph (top-1) on the
    verification clips at least ``int8.min_agreement`` of the time.
    """

    force: bool = False  # replace an existing --out
    verify: bool = True  # parity of every graph with PyTorch on real or synthetic clips
    opset: int = DEFAULT_OPSET
    frame_dim: FrameDim = fd.DEFAULT_CHOICE
    n_verify: int = 2  # verification clips
    verify_data: VerifyData | None = None
    trt: bool = False  # also build TensorRT engines here
    fp16: bool = False  # those engines in fp16
    fold_budget: float = DEFAULT_FOLD_BUDGET
    bias_first: bool = True
    int8: Int8Options | None = None
    accuracy: AccuracySpec | None = None  # measured top-1 per frame count (ffn-eval --json), into the manifest

    def __post_init__(self) -> None:
        check_fold_budget(self.fold_budget)
        check_opset(self.opset)
        check_verify_clips(self.n_verify)


def export_bundle(ckpt_path: str | os.PathLike[str], frames: Sequence[int], out_dir: str | os.PathLike[str],
                  options: ExportOptions | None = None, **kwargs: Any) -> Path:
    """Export ``ckpt_path`` for ``frames`` into the bundle directory ``out_dir`` and return its path.


    ``options`` (or its fields as keywords, not both): see ``ExportOptions``.
    Raises an FFNError (one line) on bad input or a failed check; ``out_dir`` is then untouched.
    """
    if options is not None and kwargs:
        raise TypeError("give export_bundle either options= or keyword options, not both")
    o = options if options is not None else ExportOptions(**kwargs)
    counts = parse_frames(frames)
    out = Path(out_dir)
    check_out(out, o.force)
    check_checkpoint_path(Path(ckpt_path))
    if o.trt:
        from . import tensorrt as trt_build

        trt_build.require()  # before minutes of export work, not after
    model, meta = load_checkpoint(ckpt_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    cleanup_stale(out.parent, out.name)
    tmp = staging_dir(out)
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # keep the bundle as readable as a plain mkdir would make it
    try:
        with torch.no_grad():
            manifest = _build(model, meta, Path(ckpt_path), counts, tmp, o)
        write_manifest(tmp, manifest)
        load_manifest(tmp, verify=True)  # what the runtime will do first
        if o.trt:
            trt_build.build_engines(tmp, fp16=o.fp16)
        check_out(out, o.force)  # someone may have created it meanwhile
        replace_dir(tmp, out)
    except BaseException:
        discard(tmp)
        raise
    return out
