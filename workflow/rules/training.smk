# GAN training (paper sections 3.2, 3.3): global generator, optional local
# enhancer, face GAN. Each rule declares its final model and a copy of its loss
# log; rolling checkpoints, losses.csv and sample grids live in
# results/runs/{target}/[{folder}/]{stage}/, which Snakemake does not delete, so
# a rerun after a kill resumes.
#
# One rule per stage of each variant of TRAINING_VARIANTS (workflow/rules/common.smk):
#   train_global, train_local, train_face     the configured training: results/models/{target}/{stage}.pt
#   train_global_fbf                           frame by frame (the paper's FBF, Table 1): fbf/global.pt
#   train_global_paper, train_face_paper       the paper's whole-frame method: paper/{global,face}.pt
# The last two variants are for the ablation only (not part of `rule all`). The local
# enhancer starts from the global stage, the face GAN from the last main stage.


for _name, _variant, _stage in TRAINING_RULES:

    rule:
        name:
            _name
        input:
            **training_inputs(_variant, _stage),
        output:
            model=model_file("{target}", _variant, _stage),
            losses=f"results/models/{{target}}/{stage_path(_variant, _stage)}.losses.csv",
        params:
            init=get_init_option,
            background=get_background_options,
            run_dir=f"results/runs/{{target}}/{stage_path(_variant, _stage)}",
            options=training_options(_variant, _stage),
            launcher=TRAINING_LAUNCHER,
        threads: config["training"]["threads"]
        resources:
            mem_mb=config["training"]["mem_mb"],
            gpu=config["training"]["gpus"],
            **TRAINING_TASK_RESOURCES,
        log:
            f"results/logs/{_name}/{{target}}.log",
        benchmark:
            f"results/benchmarks/{_name}/{{target}}.tsv"
        conda:
            "../../envs/train.yaml"
        shell:
            "{params.launcher}python -m edn --log {log:q} train --frames {input.frames:q} --labels {input.labels:q}"
            " --index {input.index:q} --perceptual {input.perceptual:q} {params.init} {params.background}"
            " --output {output.model:q}"
            " --losses-output {output.losses:q} --run-dir {params.run_dir:q} --threads {threads} {params.options}"
