# Stick figures: one renderer for a target's training labels and for each
# pair's transfer labels, with previews to look at.


rule render_subject_labels:
    input:
        unpack(get_window_stats),
        poses="results/poses/{subject}.filtered.parquet",
    output:
        labels="results/labels/{subject}/labels.npy",
        index="results/labels/{subject}/index.csv",
    params:
        window=get_window_options,
    log:
        "results/logs/render_subject_labels/{subject}.log",
    benchmark:
        "results/benchmarks/render_subject_labels/{subject}.tsv"
    conda:
        "../../envs/normalize.yaml"
    shell:
        "python -m edn --log {log:q} render --poses {input.poses:q} --labels {output.labels:q}"
        " --index {output.index:q} {params.window}"


use rule render_subject_labels as render_transfer_labels with:
    input:
        unpack(get_window_stats),
        poses="results/transfer/{source}_to_{target}/poses.parquet",
    output:
        labels="results/transfer/{source}_to_{target}/labels/labels.npy",
        index="results/transfer/{source}_to_{target}/labels/index.csv",
    log:
        "results/logs/render_transfer_labels/{source}_to_{target}.log",
    benchmark:
        "results/benchmarks/render_transfer_labels/{source}_to_{target}.tsv"


rule preview_subject_labels:
    input:
        labels="results/labels/{subject}/labels.npy",
        index="results/labels/{subject}/index.csv",
        meta="results/frames/{subject}/meta.json",
    output:
        "results/labels/{subject}/preview.mp4",
    log:
        "results/logs/preview_subject_labels/{subject}.log",
    conda:
        "../../envs/normalize.yaml"
    shell:
        "python -m edn --log {log:q} label-preview --labels {input.labels:q} --index {input.index:q}"
        " --meta {input.meta:q} --output {output:q}"


use rule preview_subject_labels as preview_transfer_labels with:
    input:
        labels="results/transfer/{source}_to_{target}/labels/labels.npy",
        index="results/transfer/{source}_to_{target}/labels/index.csv",
        meta="results/frames/{source}/meta.json",
    output:
        "results/transfer/{source}_to_{target}/labels/preview.mp4",
    log:
        "results/logs/preview_transfer_labels/{source}_to_{target}.log",
