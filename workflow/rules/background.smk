# The target's background plate (the composite method draws the person over it):
# its frames with the person left out, a per-pixel temporal median, and the
# person's segmentation masks the composite method trains with.


rule background_plate:
    input:
        frames="results/frames/{target}/frames.npy",
        labels="results/labels/{target}/labels.npy",
    output:
        plate=report("results/background/{target}.png", caption="../report/background.rst",
                     category="Background"),
        coverage="results/background/{target}.coverage.png",
        report="results/background/{target}.json",
        masks="results/background/{target}.masks.npy",
    params:
        options=section_options(BackgroundOptions, "background"),
    threads: config["pose"]["workers"]
    log:
        "results/logs/background_plate/{target}.log",
    benchmark:
        "results/benchmarks/background_plate/{target}.tsv"
    conda:
        "../../envs/pose.yaml"
    shell:
        "python -m edn --log {log} background --subject {wildcards.target} --frames {input.frames:q}"
        " --labels {input.labels:q} --plate {output.plate:q} --coverage {output.coverage:q}"
        " --report {output.report:q} --masks {output.masks:q} --workers {threads} {params.options}"
