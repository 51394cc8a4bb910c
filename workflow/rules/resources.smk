# Resources made once per installation: the perceptual loss's network weights.


rule perceptual_weights:
    input:
        get_perceptual_source,
    output:
        str(PERCEPTUAL_DIR / "{network}.pt"),
    wildcard_constraints:
        network="vgg16_hed|vgg19_imagenet",
    params:
        options=get_perceptual_options,
    log:
        "results/logs/perceptual_weights/{network}.log",
    conda:
        "../../envs/train.yaml"
    shell:
        "python -m edn --log {log} perceptual-weights --network {wildcards.network} --output {output:q}"
        " {params.options}"
