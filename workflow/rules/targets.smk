# One target per stage, for every subject or pair in the config:
#
#   snakemake --cores all poses            # detect and filter every subject's poses
#   snakemake --cores all global_models    # train every target's global stage
#
# Each builds its stage and whatever it needs, nothing after it.


rule videos:
    input:
        expand("results/videos/{subject}.mp4", subject=sorted(SUBJECTS)),


rule frames:
    input:
        expand("results/frames/{subject}/frames.npy", subject=sorted(SUBJECTS)),


rule poses:
    input:
        expand("results/poses/{subject}.filtered.parquet", subject=sorted(SUBJECTS)),
        expand("results/poses/{subject}.preview.mp4", subject=sorted(SUBJECTS)),


rule stats:
    input:
        expand("results/stats/{subject}.json", subject=get_pair_subjects()),


rule normalized:
    input:
        expand("results/transfer/{pair}/poses.parquet", pair=get_pair_names()),
        expand("results/transfer/{pair}/normalization.png", pair=get_pair_names()),


rule labels:
    input:
        expand("results/labels/{target}/preview.mp4", target=get_targets()),
        expand("results/transfer/{pair}/labels/preview.mp4", pair=get_pair_names()),


rule global_models:
    input:
        expand("results/models/{target}/global.pt", target=get_targets()),


rule local_models:
    input:
        expand("results/models/{target}/local.pt", target=get_targets()),


rule face_models:
    input:
        expand("results/models/{target}/face.pt", target=get_targets()),


rule synthesized:
    input:
        expand("results/transfer/{pair}/frames.npy", pair=get_pair_names()),


rule transfers:
    input:
        expand("results/transfer/{pair}.mp4", pair=get_pair_names()),
        expand("results/transfer/{pair}.compare.mp4", pair=get_pair_names()),


# The paper's ablation for every target (not part of `rule all`: it trains one
# more global stage, frame by frame; needs training.use_local: false).
rule ablations:
    input:
        expand("results/eval/{target}/ablation.md", target=get_targets()),
        expand("results/report/{target}_ablation.html", target=get_targets()),


# The fake detector of every target (not part of `rule all`: it regenerates each
# target's video and trains a classifier).
rule detectors:
    input:
        expand("results/detector/{target}/metrics.csv", target=get_targets()),
        expand("results/detector/{target}/roc.png", target=get_targets()),
        expand("results/report/{target}_detector.html", target=get_targets()),


# Everything the HTML report shows:
#   snakemake --cores all report_inputs && snakemake --report results/report.zip report_inputs
rule report_inputs:
    input:
        get_final_outputs(),
        expand("results/report/{pair}.html", pair=get_pair_names()),
        expand("results/report/{target}_evaluation.html", target=get_targets()),
