"""Live video on a session: the window stream and the online (per-frame) stream, their options and
labels. Built on backends, media, control and results; names the session only through a Protocol.
"""
