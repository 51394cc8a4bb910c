"""Stage 5, background (``workflow/rules/background.smk``): each target's plate,
the background the composite method draws the person over.

``registration``: every frame's transform to one reference view, from its
background alone. ``plate``: segmentation, the per-pixel median in the
reference view (a mosaic for a moving camera), fill, and the check that the
background holds still once registered.
"""
