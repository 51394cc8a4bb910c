"""Stage 9, evaluation (``workflow/rules/evaluation.smk``): the held-out table,
the baselines and the ablation report.

``evaluate``: the per-frame and per-region scores. ``metrics``: SSIM, LPIPS,
ST-LPIPS and temporal stability. ``baseline``: nearest neighbour and the bare
plate. ``report``: tables and figures, and the target's camera section.
``registered``: a camera that moves, each held-out frame seen in its own camera.
"""
