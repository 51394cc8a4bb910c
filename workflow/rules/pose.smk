# Poses: detect every subject's keypoints (one per decoded frame), smooth them
# over time, and draw them over the frames for a look.


rule detect_poses:
    input:
        unpack(get_pose_inputs),
    output:
        "results/poses/{subject}.parquet",
    params:
        backend=get_pose_backend,
        options=get_pose_options,
    threads: get_pose_threads
    log:
        "results/logs/detect_poses/{subject}.log",
    benchmark:
        "results/benchmarks/detect_poses/{subject}.tsv"
    conda:
        "../../envs/pose.yaml"
    shell:
        "python -m edn --log {log} pose --backend {params.backend} --frames {input.frames:q}"
        " --meta {input.meta:q} --output {output:q} --workers {threads} {params.options}"


rule smooth_poses:
    input:
        poses="results/poses/{subject}.parquet",
    output:
        "results/poses/{subject}.smooth.parquet",
    params:
        max_gap=config["smoothing"]["max_gap_frames"],
        median=config["smoothing"]["median_window"],
        sigma=config["smoothing"]["sigma_frames"],
    log:
        "results/logs/smooth_poses/{subject}.log",
    benchmark:
        "results/benchmarks/smooth_poses/{subject}.tsv"
    conda:
        "../../envs/pose.yaml"
    shell:
        "python -m edn --log {log} smooth-poses --poses {input.poses:q} --output {output:q}"
        " --max-gap-frames {params.max_gap} --median-window {params.median} --sigma-frames {params.sigma}"


rule preview_poses:
    input:
        poses="results/poses/{subject}.smooth.parquet",
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
        "python -m edn --log {log} pose-preview --poses {input.poses:q} --frames {input.frames:q}"
        " --meta {input.meta:q} --output {output:q}"
