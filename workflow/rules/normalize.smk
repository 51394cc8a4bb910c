# Global pose normalization (paper section 3.1): per-subject statistics, then
# each pair's source poses mapped onto its target.


rule subject_stats:
    input:
        poses="results/poses/{subject}.filtered.parquet",
    output:
        "results/stats/{subject}.json",
    params:
        options=section_options(SubjectStatsOptions, "normalization"),
    log:
        "results/logs/subject_stats/{subject}.log",
    conda:
        "../../envs/normalize.yaml"
    shell:
        "python -m edn --log {log:q} stats --poses {input.poses:q} --subject {wildcards.subject:q}"
        " {params.options} --output {output:q}"


rule normalize_transfer:
    input:
        unpack(get_target_camera),
        source_poses="results/poses/{source}.filtered.parquet",
        source_stats="results/stats/{source}.json",
        target_stats="results/stats/{target}.json",
    output:
        "results/transfer/{source}_to_{target}/poses.parquet",
    params:
        options=section_options(NormalizationOptions, "normalization"),
        camera=section_options(CameraOptions, "synthesis"),
        target_camera=get_target_camera_options,
    log:
        "results/logs/normalize_transfer/{source}_to_{target}.log",
    conda:
        "../../envs/normalize.yaml"
    shell:
        "python -m edn --log {log:q} normalize --source-poses {input.source_poses:q}"
        " --source-stats {input.source_stats:q} --target-stats {input.target_stats:q}"
        " {params.target_camera} --output {output:q} {params.options} {params.camera}"


rule normalization_figure:
    input:
        normalized="results/transfer/{source}_to_{target}/poses.parquet",
        target_poses="results/poses/{target}.filtered.parquet",
        target_frames="results/frames/{target}/frames.npy",
    output:
        report(
            "results/transfer/{source}_to_{target}/normalization.png",
            caption="../report/normalization.rst",
            category="Normalization",
        ),
    log:
        "results/logs/normalization_figure/{source}_to_{target}.log",
    conda:
        "../../envs/normalize.yaml"
    shell:
        "python -m edn --log {log:q} normalization-figure --normalized-poses {input.normalized:q}"
        " --target-poses {input.target_poses:q} --target-frames {input.target_frames:q}"
        " --output {output:q}"
