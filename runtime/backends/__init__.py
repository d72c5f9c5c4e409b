"""Inference backends: one small interface over ONNX Runtime and native TensorRT engines (no torch).

Every backend holds ALL the bundle's sub-network graphs ready at once (switching the frame count
is a dictionary lookup, never a load) and answers ``run(frames, clip) -> logits`` for a float32
clip (N, T, 3, H, W) already normalised, on the graph exported for ``frames`` (T == ``frames``,
or any T when that graph has a dynamic frame dimension).

* ``OrtBackend``: one ``onnxruntime.InferenceSession`` per graph, explicit providers (CPU EP by
  default; CUDA / TensorRT EPs on request, ``ort_providers``: the TensorRT EP with engine and timing
  caches and explicit profiles per graph), all options built in ``session_options``; a session that
  lands on another provider than the one asked for is refused. Weight sharing on the CPU EP only
  (``share_weights=True``, the default): ORT normally gives every session its own copy of the
  weights — the copy it loads, plus the copy its optimiser rewrites (x86 NCHWc weight layout) — so N
  sub-networks cost N models. Instead each graph is optimised once at open (all ORT optimisations
  except the fusions that would bake a sub-network's norm into a shared convolution), saved to a
  temporary file, and its large tensors (now identical across sub-networks) are pooled by content
  and handed to every session as the same ``OrtValue`` (``SessionOptions.add_initializer``); the
  sessions also share one activation arena (they run one at a time). Where the exporter gave a
  sub-network its own copy of an early convolution with the norm folded in (``--fold-budget``), that
  copy is pooled like any tensor: one per sub-network, shared by graphs of the same sub-network,
  never mistaken for another's (pooling is by content, dtype and shape). Simply adding the bundle's
  weights with ``add_initializer`` is not enough: the NCHWc re-layout still copies them per session,
  and turning it off costs ~35 % latency on x86. ``benchmarks/runtime_latency.py`` measures RSS and
  latency of both modes.
* ``TensorRTBackend``: the engines listed in ``manifest.extra["engines"]`` for this device, run by
  ``runtime/backends/trt_engine.py`` (the module the exporter builds them with). Engines built for another GPU,
  TensorRT version or precision are refused with a message that says how to rebuild them.
* ``open_backend(..., backend="auto")`` tries TensorRT engines > ORT TensorRT EP > ORT CUDA EP >
  ORT CPU, skipping any that cannot start (reason logged in one line), and logs its choice
  (``Backend.name``); a backend named explicitly that cannot start is a one-line FFNError.
* Step graphs (online mode, causal bundles): ``steps.StepGraphs`` is their interface and the ORT CPU
  implementation; ``steps_ort_cuda`` (CUDA EP, IO binding) and ``steps_tensorrt`` (native step engines)
  keep the shift buffers on the GPU (``step_state``); ``step_select.open_step_graphs`` picks the one for
  a session's backend.
"""
