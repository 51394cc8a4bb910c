# Evaluation (paper section 4): the target's held-out frames reconstructed from
# their own poses by each method, scored against the real frames.
#
#   results/eval/{target}/metrics.csv     the configured model against the baselines
#   results/eval/{target}/ablation.md     the paper's Table 1: FBF, FBF+TS, FBF+TS+FG, the paper's
#                                         method and the baselines, at one budget
#   results/eval/{target}/camera.md, .png the camera registered, and which method drew the target
# The methods and the rows of each table are METHODS in workflow/rules/common.smk.


rule evaluate_method:
    input:
        unpack(get_evaluation_models),
        unpack(get_exemplar_inputs),
        # A camera that moves is evaluated in each held-out frame's own camera (docs/evaluation.md).
        mosaic="results/background/{target}.mosaic.png",
        camera="results/background/{target}.camera.csv",
        plate_report="results/background/{target}.json",
        frames="results/frames/{target}/frames.npy",
        poses="results/poses/{target}.filtered.parquet",
        labels="results/labels/{target}/labels.npy",
        index="results/labels/{target}/index.csv",
    output:
        generated="results/eval/{target}/{method}/generated.npy",
        metrics="results/eval/{target}/{method}/metrics.csv",
    params:
        holdout=HOLDOUT_OPTION,
        models=get_model_options,
        camera=lambda wildcards, input: (f"--mosaic {shlex.quote(input.mosaic)} --camera {shlex.quote(input.camera)}"
                                         f" --plate-report {shlex.quote(input.plate_report)}"),
        runtime=section_options(RuntimeOptions, "synthesis"),
        face=section_options(ExemplarFaceOptions, "synthesis"),
    threads: config["synthesis"]["threads"]
    resources:
        mem_mb=config["synthesis"]["mem_mb"],
        gpu=config["synthesis"]["gpus"],
    log:
        "results/logs/evaluate_method/{target}/{method}.log",
    benchmark:
        "results/benchmarks/evaluate_method/{target}/{method}.tsv"
    conda:
        "../../envs/evaluate.yaml"
    shell:
        "python -m edn --log {log:q} evaluate --method {wildcards.method:q} --frames {input.frames:q}"
        " --poses {input.poses:q} --labels {input.labels:q} --index {input.index:q}"
        " {params.holdout} {params.models} {params.camera} {params.runtime} {params.face} --threads {threads}"
        " --generated {output.generated:q} --output {output.metrics:q}"


rule evaluation_table:
    input:
        metrics=expand("results/eval/{{target}}/{method}/metrics.csv", method=methods_in("metrics")),
        generated=expand("results/eval/{{target}}/{method}/generated.npy", method=methods_in("metrics")),
        frames="results/frames/{target}/frames.npy",
    output:
        csv="results/eval/{target}/metrics.csv",
        markdown="results/eval/{target}/metrics.md",
        samples=report("results/eval/{target}/samples.png", caption="../report/samples.rst",
                       category="Evaluation"),
    params:
        holdout=HOLDOUT_OPTION,
    log:
        "results/logs/evaluation_table/{target}.log",
    conda:
        "../../envs/evaluate.yaml"
    shell:
        "python -m edn --log {log:q} eval-table --metrics {input.metrics:q} --generated {input.generated:q}"
        " --frames {input.frames:q} {params.holdout} --output-csv {output.csv:q}"
        " --output-markdown {output.markdown:q} --output-samples {output.samples:q}"


use rule evaluation_table as ablation_table with:
    input:
        metrics=expand("results/eval/{{target}}/{method}/metrics.csv", method=methods_in("ablation")),
        generated=expand("results/eval/{{target}}/{method}/generated.npy", method=methods_in("ablation")),
        frames="results/frames/{target}/frames.npy",
    output:
        csv="results/eval/{target}/ablation.csv",
        markdown="results/eval/{target}/ablation.md",
        samples=report("results/eval/{target}/ablation_samples.png", caption="../report/samples.rst",
                       category="Evaluation"),
    log:
        "results/logs/ablation_table/{target}.log",


# The target's camera on its evaluation page: registration before and after, and which method drew it.
rule camera_summary:
    input:
        report="results/background/{target}.json",
        camera="results/background/{target}.camera.csv",
    output:
        markdown="results/eval/{target}/camera.md",
        plot="results/eval/{target}/camera.png",
    params:
        method=command_line(TrainingOptions, {"method": config["training"]["method"]}),
    log:
        "results/logs/camera_summary/{target}.log",
    conda:
        "../../envs/evaluate.yaml"
    shell:
        "python -m edn --log {log:q} camera-summary --plate-report {input.report:q} --camera {input.camera:q}"
        " {params.method} --output-markdown {output.markdown:q} --output-plot {output.plot:q}"


rule plot_losses:
    input:
        losses="results/models/{target}/{stage}.losses.csv",
    output:
        report(
            "results/models/{target}/{stage}.losses.png",
            caption="../report/losses.rst",
            category="Training",
            subcategory="{target}",
        ),
    wildcard_constraints:
        stage="global|local|face",
    params:
        title="{target}: {stage} stage",
    log:
        "results/logs/plot_losses/{target}/{stage}.log",
    conda:
        "../../envs/evaluate.yaml"
    shell:
        "python -m edn --log {log:q} plot-losses --losses {input.losses:q}"
        " --title {params.title:q} --output {output:q}"
