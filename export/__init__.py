"""Exporter: FFN checkpoint -> bundle of per-frame-count ONNX graphs sharing one weight file."""
