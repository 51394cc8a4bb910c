"""Training the three stages: data pairs, the per-stage iteration, the resumable loop.

``data``: consecutive frame pairs, held-out split. ``trainer``: what every
stage's trainer has (networks, optimisers, the update). ``main_stage``: the
global and local stages. ``face_stage``: the face GAN. ``run_directory``:
rolling checkpoints, loss log, samples. ``loop``: :func:`train_stage`.
"""
