# Poses: detect every subject's keypoints (one per decoded frame), filter them
# over time, and draw them over the frames for a look.


rule detect_poses:
    input:
        unpack(get_pose_inputs),
    output:
        "results/poses/{subject}.parquet",
    params:
        options=get_pose_options,
    threads: get_pose_threads
    log:
        "results/logs/detect_poses/{subject}.log",
    benchmark:
        "results/benchmarks/detect_poses/{subject}.tsv"
    conda:
        "../../envs/pose.yaml"
    shell:
        "python -m edn --log {log:q} pose --frames {input.frames:q} --meta {input.meta:q} --output {output:q}"
        " {params.options}"


rule filter_poses:
    input:
        poses="results/poses/{subject}.parquet",
    output:
        "results/poses/{subject}.filtered.parquet",
    params:
        options=section_options(KeypointFilterOptions, "keypoint_filter"),
    log:
        "results/logs/filter_poses/{subject}.log",
    benchmark:
        "results/benchmarks/filter_poses/{subject}.tsv"
    conda:
        "../../envs/pose.yaml"
    shell:
        "python -m edn --log {log:q} filter-poses --poses {input.poses:q} --output {output:q} {params.options}"


rule preview_poses:
    input:
        poses="results/poses/{subject}.filtered.parquet",
        frames="results/frames/{subject}/frames.npy",
        meta="results/frames/{subject}/meta.json",
    output:
        "results/poses/{subject}.preview.mp4",
    log:
        "results/logs/preview_poses/{subject}.log",
    benchmark:
        "results/benchmarks/preview_poses/{subject}.tsv"
    conda:
        "../../envs/pose.yaml"
    shell:
        "python -m edn --log {log:q} pose-preview --poses {input.poses:q} --frames {input.frames:q}"
        " --meta {input.meta:q} --output {output:q}"
