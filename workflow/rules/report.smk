# Pages for people and for `snakemake --report`: Snakemake's report offers mp4
# and CSV files only as downloads, so each pair's videos and each target's
# evaluation tables are also embedded in one HTML page that the report shows.
#
#   snakemake --cores all report_inputs
#   snakemake --report results/report.zip report_inputs
#
# A zip report keeps every page a file of its own; the single-file form
# (report.html) embeds pages as data URLs, which Chromium refuses above 2 MB.


rule transfer_page:
    input:
        video="results/transfer/{source}_to_{target}.mp4",
        compare="results/transfer/{source}_to_{target}.compare.mp4",
        figure="results/transfer/{source}_to_{target}/normalization.png",
    output:
        report(
            "results/report/{source}_to_{target}.html",
            caption="../report/transfer.rst",
            category="Transfer",
        ),
    params:
        title="{source} onto {target}",
    log:
        "results/logs/transfer_page/{source}_to_{target}.log",
    conda:
        "../../envs/evaluate.yaml"
    shell:
        "python -m edn --log {log:q} html-page --title {params.title:q}"
        " --description 'The transfer (with the source soundtrack), then source, stick figure and result side"
        " by side, then the normalized pose over a target frame.'"
        " --item video={input.video:q} --item video={input.compare:q} --item image={input.figure:q}"
        " --output {output:q}"


rule evaluation_page:
    input:
        table="results/eval/{target}/metrics.md",
        details="results/eval/{target}/metrics.csv",
        samples="results/eval/{target}/samples.png",
        camera="results/eval/{target}/camera.md",
        camera_plot="results/eval/{target}/camera.png",
        losses=get_target_loss_plots,
    output:
        report(
            "results/report/{target}_evaluation.html",
            caption="../report/metrics.rst",
            category="Evaluation",
        ),
    params:
        title="{target}: held-out evaluation",
        losses=get_loss_plot_items,
    log:
        "results/logs/evaluation_page/{target}.log",
    conda:
        "../../envs/evaluate.yaml"
    shell:
        "python -m edn --log {log:q} html-page --title {params.title:q}"
        " --description 'Held-out frames reconstructed from their own poses: the configured model against the"
        " nearest-neighbour baseline; the camera, registered, and which method drew the target; every value in"
        " the details table; sample frames; training losses.'"
        " --item table={input.table:q} --item table={input.camera:q} --item image={input.camera_plot:q}"
        " --item image={input.samples:q} {params.losses}"
        " --item table={input.details:q} --output {output:q}"


rule ablation_page:
    input:
        table="results/eval/{target}/ablation.md",
        details="results/eval/{target}/ablation.csv",
        samples="results/eval/{target}/ablation_samples.png",
        camera="results/eval/{target}/camera.md",
    output:
        report(
            "results/report/{target}_ablation.html",
            caption="../report/ablation.rst",
            category="Evaluation",
        ),
    params:
        title="{target}: ablation",
        description=ABLATION_DESCRIPTION,
    log:
        "results/logs/ablation_page/{target}.log",
    conda:
        "../../envs/evaluate.yaml"
    shell:
        "python -m edn --log {log:q} html-page --title {params.title:q} --description {params.description:q}"
        " --item table={input.table:q} --item table={input.camera:q} --item image={input.samples:q}"
        " --item table={input.details:q} --output {output:q}"
