"""Training the three stages: data pairs, the per-stage iteration, the resumable loop.

``data``: consecutive frame pairs, held-out split. ``stages``: networks,
optimisers and one iteration per stage. ``run_directory``: rolling
checkpoints, loss log, samples. ``loop``: :func:`train_stage`.
"""
