"""Stage 5, background (``workflow/rules/background.smk``): each target's plate,
the background the composite method draws the person over.

``plate``: segmentation, per-pixel median, fill and the static-camera check.
"""
