rule prepare_dataset:
    """Read, validate and resize a dataset once into one HDF5 file shared by all experiments."""
    output:
        f"{RESULTS}/datasets/{{dataset}}.h5",
    params:
        spec=lambda wc: CFG["datasets"][wc.dataset],
        version=CODE_VERSION,
    log:
        f"{RESULTS}/datasets/logs/{{dataset}}.log",
    conda:
        "../envs/alseg.yaml"
    script:
        "../scripts/prepare_dataset.py"
