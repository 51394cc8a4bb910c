"""What every stage uses: options, errors, atomic writes, the run-time device, torch
files, checkpoints, presets, plots, HTML pages and the results summary.

Nothing here imports a stage; every stage may import from here.
"""
