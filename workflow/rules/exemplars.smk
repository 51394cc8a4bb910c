# Warped exemplars for the composite generator conditioned on them (training.exemplar;
# the exemplar and exemplar_fbf training variants of TRAINING_VARIANTS in common.smk).
# For training, every frame of a target gets training.exemplar_choices other training
# frames, more than training.exemplar_gap frames away (and from each other), warped to
# its pose, one of them drawn for each training sample; for a transfer, every
# normalized source pose gets the training frame that edn pose-warp chooses (with its
# hysteresis), warped to it. For the pose_warp method (METHODS in common.smk), the
# held-out end of the target's own poses is drawn the same way, from its training frames,
# and edn evaluate scores those frames; a conditioned generator's evaluation corrects those
# same frames, as its synthesis corrects a transfer's. Held-out frames are never exemplars.
# A camera that moves (the plate stage's report says so): a target frame's exemplar, for
# training or held out, is drawn over the plate in that frame's own camera (the mosaic
# warped into it, as training and evaluation draw it); a transfer's, over the reference
# view's plate, or with synthesis.camera: replay over the plate in the replayed camera.
# The mosaic, camera table and report come from the same job as the plate and masks.


rule training_exemplars:
    input:
        frames="results/frames/{target}/frames.npy",
        **background_files("{target}"),
        poses="results/poses/{target}.filtered.parquet",
    output:
        exemplars=training_exemplar_files("{target}")["exemplars"],
        validity=training_exemplar_files("{target}")["exemplar_validity"],
        table="results/exemplars/{target}/training.csv",
    params:
        background=get_background_options,
        holdout=HOLDOUT_OPTION,
        choosing=command_line(TrainingOptions, {"exemplar_gap": config["training"]["exemplar_gap"],
                                                "exemplar_choices": config["training"]["exemplar_choices"]}),
        options=section_options(ExemplarOptions, "exemplars", skip=REQUESTED_POSES_ONLY),
    log:
        "results/logs/training_exemplars/{target}.log",
    benchmark:
        "results/benchmarks/training_exemplars/{target}.tsv"
    conda:
        "../../envs/train.yaml"
    shell:
        "python -m edn --log {log:q} training-exemplars --frames {input.frames:q} {params.background}"
        " --poses {input.poses:q} {params.holdout} {params.choosing} {params.options}"
        " --output {output.exemplars:q} --validity {output.validity:q} --exemplars {output.table:q}"
        " --no-progress"


rule transfer_exemplars:
    input:
        unpack(get_replay_inputs),  # synthesis.camera: replay, the composite method
        frames="results/frames/{target}/frames.npy",
        masks=background_files("{target}")["masks"],
        plate=background_files("{target}")["plate"],
        poses="results/poses/{target}.filtered.parquet",
        requested="results/transfer/{source}_to_{target}/poses.parquet",
    output:
        frames="results/exemplars/{source}_to_{target}/frames.npy",
        validity="results/exemplars/{source}_to_{target}/validity.npy",
        table="results/exemplars/{source}_to_{target}/exemplars.csv",
    params:
        replay=lambda wildcards, input: (
            f"--mosaic {shlex.quote(input.mosaic)} --camera {shlex.quote(input.target_camera)}"
            f" --plate-report {shlex.quote(input.plate_report)}" if "target_camera" in input.keys() else ""),
        holdout=HOLDOUT_OPTION,
        options=section_options(ExemplarOptions, "exemplars"),
    log:
        "results/logs/transfer_exemplars/{source}_to_{target}.log",
    benchmark:
        "results/benchmarks/transfer_exemplars/{source}_to_{target}.tsv"
    conda:
        "../../envs/train.yaml"
    shell:
        "python -m edn --log {log:q} pose-warp --frames {input.frames:q} --masks {input.masks:q}"
        " --poses {input.poses:q} --plate {input.plate:q} --requested {input.requested:q} {params.replay}"
        " {params.holdout} {params.options} --output {output.frames:q} --validity {output.validity:q}"
        " --exemplars {output.table:q}"


rule pose_warp_heldout:
    input:
        frames="results/frames/{target}/frames.npy",
        **background_files("{target}"),
        poses="results/poses/{target}.filtered.parquet",
    output:
        frames=heldout_exemplar_files("{target}")["exemplars"],
        validity=heldout_exemplar_files("{target}")["exemplar_validity"],
        table="results/exemplars/{target}/heldout.csv",
    params:
        background=get_background_options,
        holdout=HOLDOUT_OPTION,
        options=section_options(ExemplarOptions, "exemplars"),
    log:
        "results/logs/pose_warp_heldout/{target}.log",
    benchmark:
        "results/benchmarks/pose_warp_heldout/{target}.tsv"
    conda:
        "../../envs/train.yaml"
    shell:
        "python -m edn --log {log:q} pose-warp --frames {input.frames:q} {params.background}"
        " --poses {input.poses:q} --requested {input.poses:q} --heldout-only"
        " {params.holdout} {params.options} --output {output.frames:q} --validity {output.validity:q}"
        " --exemplars {output.table:q}"
