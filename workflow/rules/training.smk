# GAN training (paper sections 3.2, 3.3): global generator, optional local
# enhancer, face GAN. Each rule declares its final model and a copy of its loss
# log; rolling checkpoints, losses.csv and sample grids live in
# results/runs/{target}/{stage}/, which Snakemake does not delete, so a rerun
# after a kill resumes.


rule train_global:
    input:
        unpack(get_background),
        frames="results/frames/{target}/frames.npy",
        labels="results/labels/{target}/labels.npy",
        index="results/labels/{target}/index.csv",
        perceptual=get_perceptual_weights,
    output:
        model="results/models/{target}/global.pt",
        losses="results/models/{target}/global.losses.csv",
    params:
        init="",
        background=get_background_options,
        run_dir="results/runs/{target}/global",
        options=get_global_training_options,
        launcher=TRAINING_LAUNCHER,  # every rule below keeps it (use rule ... with: merges params)
    threads: config["training"]["threads"]
    resources:
        mem_mb=config["training"]["mem_mb"],
        gpu=config["training"]["gpus"],
        **TRAINING_TASK_RESOURCES,
    log:
        "results/logs/train_global/{target}.log",
    benchmark:
        "results/benchmarks/train_global/{target}.tsv"
    conda:
        "../../envs/train.yaml"
    shell:
        "{params.launcher}python -m edn --log {log} train --frames {input.frames:q} --labels {input.labels:q}"
        " --index {input.index:q} --perceptual {input.perceptual:q} {params.init} {params.background}"
        " --output {output.model:q}"
        " --losses-output {output.losses:q} --run-dir {params.run_dir:q} --threads {threads} {params.options}"


# The paper's frame-by-frame ablation (FBF, Table 1): the global stage with the
# same options and budget, but without temporal smoothing; evaluation only.
use rule train_global as train_global_fbf with:
    output:
        model="results/models/{target}/fbf/global.pt",
        losses="results/models/{target}/fbf/global.losses.csv",
    params:
        init="",
        background=get_background_options,
        run_dir="results/runs/{target}/fbf/global",
        options=get_frame_by_frame_training_options,
    log:
        "results/logs/train_global_fbf/{target}.log",
    benchmark:
        "results/benchmarks/train_global_fbf/{target}.tsv"


# The local enhancer starts from the global stage, the face GAN from the last
# main stage (local when used, else global).
use rule train_global as train_local with:
    input:
        unpack(get_background),
        frames="results/frames/{target}/frames.npy",
        labels="results/labels/{target}/labels.npy",
        index="results/labels/{target}/index.csv",
        perceptual=get_perceptual_weights,
        init="results/models/{target}/global.pt",
    output:
        model="results/models/{target}/local.pt",
        losses="results/models/{target}/local.losses.csv",
    params:
        init=get_init_option,
        background=get_background_options,
        run_dir="results/runs/{target}/local",
        options=get_local_training_options,
    log:
        "results/logs/train_local/{target}.log",
    benchmark:
        "results/benchmarks/train_local/{target}.tsv"


use rule train_local as train_face with:
    input:
        unpack(get_background),
        frames="results/frames/{target}/frames.npy",
        labels="results/labels/{target}/labels.npy",
        index="results/labels/{target}/index.csv",
        perceptual=get_perceptual_weights,
        init=get_face_init,
    output:
        model="results/models/{target}/face.pt",
        losses="results/models/{target}/face.losses.csv",
    params:
        init=get_init_option,
        background=get_background_options,
        run_dir="results/runs/{target}/face",
        options=get_face_training_options,
    log:
        "results/logs/train_face/{target}.log",
    benchmark:
        "results/benchmarks/train_face/{target}.tsv"


# The paper's whole-frame method for the ablation (not part of `rule all`): global
# stage at half the working size, about the cost per iteration of the composite
# method's person window, and its face GAN.
use rule train_global as train_global_paper with:
    input:
        frames="results/frames/{target}/frames.npy",
        labels="results/labels/{target}/labels.npy",
        index="results/labels/{target}/index.csv",
        perceptual=get_perceptual_weights,
    output:
        model="results/models/{target}/paper/global.pt",
        losses="results/models/{target}/paper/global.losses.csv",
    params:
        init="",
        background="",
        run_dir="results/runs/{target}/paper/global",
        options=get_paper_training_options,
    log:
        "results/logs/train_global_paper/{target}.log",
    benchmark:
        "results/benchmarks/train_global_paper/{target}.tsv"


use rule train_face as train_face_paper with:
    input:
        frames="results/frames/{target}/frames.npy",
        labels="results/labels/{target}/labels.npy",
        index="results/labels/{target}/index.csv",
        perceptual=get_perceptual_weights,
        init="results/models/{target}/paper/global.pt",
    output:
        model="results/models/{target}/paper/face.pt",
        losses="results/models/{target}/paper/face.losses.csv",
    params:
        init=get_init_option,
        background="",
        run_dir="results/runs/{target}/paper/face",
        options=get_paper_face_training_options,
    log:
        "results/logs/train_face_paper/{target}.log",
    benchmark:
        "results/benchmarks/train_face_paper/{target}.tsv"
