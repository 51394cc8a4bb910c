"""Stage 3, normalization (``workflow/rules/normalize.smk``): the source's poses
mapped onto the target's body and camera (paper section 3.1, eqs. 7-8).

``subject_stats``: each subject's ankle and height statistics.
``pose_transform``: the per-frame scale and translation they give.
"""
