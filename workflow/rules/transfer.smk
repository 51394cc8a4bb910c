# Transfer (paper section 3): the trained target model drawn over the source's
# normalized stick figures, then encoded with the source's soundtrack.


rule synthesize:
    input:
        unpack(configured_models("pair {source}_to_{target}")),
        unpack(get_exemplar_inputs),
        unpack(get_replay_inputs),
        unpack(get_kept_face_inputs),
        labels="results/transfer/{source}_to_{target}/labels/labels.npy",
        index="results/transfer/{source}_to_{target}/labels/index.csv",
    output:
        "results/transfer/{source}_to_{target}/frames.npy",
    params:
        models=get_model_options,
        replay=get_replay_options,
        options=section_options(RuntimeOptions, "synthesis"),
        camera=section_options(CameraOptions, "synthesis"),
        face=get_kept_face_options,
    threads: config["synthesis"]["threads"]
    resources:
        mem_mb=config["synthesis"]["mem_mb"],
        gpu=config["synthesis"]["gpus"],
    log:
        "results/logs/synthesize/{source}_to_{target}.log",
    benchmark:
        "results/benchmarks/synthesize/{source}_to_{target}.tsv"
    conda:
        "../../envs/train.yaml"
    shell:
        "python -m edn --log {log:q} synthesize --labels {input.labels:q} --index {input.index:q}"
        " {params.models} {params.replay} {params.face} --output {output:q} {params.options} {params.camera}"
        " --threads {threads}"


rule encode_transfer:
    input:
        frames="results/transfer/{source}_to_{target}/frames.npy",
        meta="results/frames/{source}/meta.json",
        video="results/videos/{source}.mp4",
    output:
        "results/transfer/{source}_to_{target}.mp4",
    params:
        options=section_options(EncodeOptions, "synthesis"),
    log:
        "results/logs/encode_transfer/{source}_to_{target}.log",
    benchmark:
        "results/benchmarks/encode_transfer/{source}_to_{target}.tsv"
    conda:
        "../../envs/ingest.yaml"
    shell:
        "python -m edn --log {log:q} encode --frames {input.frames:q} --source-meta {input.meta:q}"
        " --source-video {input.video:q} {params.options} --output {output:q}"


rule compare_transfer:
    input:
        source_frames="results/frames/{source}/frames.npy",
        labels="results/transfer/{source}_to_{target}/labels/labels.npy",
        frames="results/transfer/{source}_to_{target}/frames.npy",
        meta="results/frames/{source}/meta.json",
        video="results/videos/{source}.mp4",
    output:
        "results/transfer/{source}_to_{target}.compare.mp4",
    log:
        "results/logs/compare_transfer/{source}_to_{target}.log",
    benchmark:
        "results/benchmarks/compare_transfer/{source}_to_{target}.tsv"
    conda:
        "../../envs/ingest.yaml"
    shell:
        "python -m edn --log {log:q} compare --source-frames {input.source_frames:q} --labels {input.labels:q}"
        " --frames {input.frames:q} --source-meta {input.meta:q} --source-video {input.video:q}"
        " --output {output:q}"
