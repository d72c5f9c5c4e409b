"""Frames in: video sources (camera, file, URL, GStreamer), the capture thread and its ring of
preprocessed frames, the checks on clips, files and stream options, and the scene-cut test of online
mode. Imports core and bundle only.
"""
