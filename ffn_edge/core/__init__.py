"""The torch-free foundation every layer imports: errors, number and size limits, safe file reads,
atomic writes, the CLI parser base, the nearest-sub-network rule, install hints and the project's defaults.

Nothing here imports torch, numpy-heavy code, OpenCV or ONNX Runtime, nor any other ffn_edge package.
"""
