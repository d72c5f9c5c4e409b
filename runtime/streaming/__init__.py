"""Live video on a session: one capture/decision loop (``loop``) with the window mode and the online
(per-frame) mode as strategies on it, the two public streams, their options and the online labels.
Built on backends, media, control and results; names the session only through a Protocol.
"""
