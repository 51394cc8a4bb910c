# Videos in: fetch (copy, or download and cache) and decode to working frames.


rule fetch_video:
    input:
        get_video_file,
    output:
        "results/videos/{subject}.mp4",
    params:
        source=get_video_reference,
        trim=get_trim_options,
        options=section_options(DownloadOptions, "download"),
    log:
        "results/logs/fetch_video/{subject}.log",
    conda:
        "../../envs/ingest.yaml"
    shell:
        "python -m edn --log {log:q} fetch --source {params.source:q} --output {output:q}"
        " {params.trim} --cache-dir results/cache/downloads {params.options}"


# The only rule told a frame size: frames.width/height turned to each video's orientation
# (frames.orientation). Every later stage reads its size from the decoded frames, and a pair's
# from its target's (docs/configuration.md, "The working frame").
rule decode_frames:
    input:
        video="results/videos/{subject}.mp4",
    output:
        frames="results/frames/{subject}/frames.npy",
        meta="results/frames/{subject}/meta.json",
    params:
        options=section_options(FrameOptions, "frames"),
    log:
        "results/logs/decode_frames/{subject}.log",
    benchmark:
        "results/benchmarks/decode_frames/{subject}.tsv"
    conda:
        "../../envs/ingest.yaml"
    shell:
        "python -m edn --log {log:q} decode --video {input.video:q} --frames {output.frames:q}"
        " --meta {output.meta:q} {params.options}"
