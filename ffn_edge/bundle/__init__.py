"""The bundle format, shared by the exporter that writes it, the runtime that reads it and training:
the manifest (typed, checked on load), the graphs' external-weight references, and the preprocessing
its input spec defines (the one implementation training and the runtime both use).

Imports only ``ffn_edge.core``; torch-free.
"""
