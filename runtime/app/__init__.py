"""``ffn-run``: the console entry, the CLI, its end-of-run summary and the third-party log silencer.
The top layer: it may import everything below.
"""
