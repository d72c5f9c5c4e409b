"""Frames in: video sources (camera, file, URL, GStreamer), the capture thread and its ring of
preprocessed frames, and the checks on clips, files and stream options. Imports core and bundle only.
"""
