"""Stage 8, transfer (``workflow/rules/transfer.smk``): the trained generator
applied to the normalized source, and the video encoded with the source's audio.

``synthesize``: frames from labels. ``encode``: the mp4 and the comparison video.
"""
