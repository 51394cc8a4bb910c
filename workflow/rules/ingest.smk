# Videos in: fetch (copy, or download and cache) and decode to working frames.


rule fetch_video:
    input:
        get_video_file,
    output:
        "results/videos/{subject}.mp4",
    params:
        source=get_video_reference,
        trim=get_trim_options,
        timeout=config["download"]["timeout_s"],
    log:
        "results/logs/fetch_video/{subject}.log",
    conda:
        "../../envs/ingest.yaml"
    shell:
        "python -m edn --log {log} fetch --source {params.source:q} --output {output:q}"
        " {params.trim} --cache-dir results/cache/downloads --timeout {params.timeout}"


rule decode_frames:
    input:
        video="results/videos/{subject}.mp4",
    output:
        frames="results/frames/{subject}/frames.npy",
        meta="results/frames/{subject}/meta.json",
    params:
        width=config["frames"]["width"],
        height=config["frames"]["height"],
        fit=config["frames"]["fit"],
        fps=get_fps_option,
    log:
        "results/logs/decode_frames/{subject}.log",
    benchmark:
        "results/benchmarks/decode_frames/{subject}.tsv"
    conda:
        "../../envs/ingest.yaml"
    shell:
        "python -m edn --log {log} decode --video {input.video:q} --frames {output.frames:q}"
        " --meta {output.meta:q} --width {params.width} --height {params.height}"
        " --fit {params.fit} {params.fps}"
