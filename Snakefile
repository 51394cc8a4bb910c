# Everybody Dance Now as a pipeline.
#
#   snakemake --cores all                                     # every pair in the config
#   snakemake --cores all results/transfer/dancer_to_juggler.mp4   # one pair
#
# Every computation is a subcommand of the edn package; the rules in
# workflow/rules/ only connect paths. See README.md.

from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"


rule all:
    input:
        get_final_outputs(),
    default_target: True


include: "workflow/rules/ingest.smk"
include: "workflow/rules/pose.smk"
include: "workflow/rules/normalize.smk"
include: "workflow/rules/labels.smk"
include: "workflow/rules/background.smk"
include: "workflow/rules/exemplars.smk"
include: "workflow/rules/resources.smk"
include: "workflow/rules/training.smk"
include: "workflow/rules/transfer.smk"
include: "workflow/rules/targets.smk"
include: "workflow/rules/evaluation.smk"
include: "workflow/rules/fake_detector.smk"
include: "workflow/rules/report.smk"
