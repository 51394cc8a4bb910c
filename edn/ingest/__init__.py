"""Stage 1, ingest (``workflow/rules/ingest.smk``): fetch a video, decode it into
working frames.

``fetch``: downloads and their cache. ``media``: ffmpeg and ffprobe. ``decode``:
a video into ``frames.npy`` and ``frames.json``. ``frames``: that frame store.
"""
