# The target's background plate (the composite method draws the person over it):
# its frames with the person left out, registered to one reference view, a
# per-pixel temporal median (the mosaic of what the camera saw, the plate its
# reference view), the camera table (each frame's transform, gain, residuals),
# and the person's segmentation masks the composite method trains with.


rule background_plate:
    input:
        frames="results/frames/{target}/frames.npy",
        labels="results/labels/{target}/labels.npy",
    output:
        plate=report(background_files("{target}")["plate"], caption="../report/background.rst",
                     category="Background"),
        coverage="results/background/{target}.coverage.png",
        mosaic=background_files("{target}")["mosaic"],
        camera=background_files("{target}")["camera"],
        report=background_files("{target}")["plate_report"],
        masks=background_files("{target}")["masks"],
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
        "python -m edn --log {log:q} background --subject {wildcards.target:q} --frames {input.frames:q}"
        " --labels {input.labels:q} --plate {output.plate:q} --coverage {output.coverage:q}"
        " --mosaic {output.mosaic:q} --camera {output.camera:q}"
        " --report {output.report:q} --masks {output.masks:q} --workers {threads} {params.options}"
