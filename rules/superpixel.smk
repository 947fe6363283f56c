# Superpixel experiments (unit: superpixel). The base superpixels are computed once per dataset and
# setting and shared by every experiment and round; selection writes queries.csv and the round's
# regions.npz; overlays are drawn per round. Names and input functions: rules/common_superpixel.smk.

localrules:
    select_superpixel_queries,
    superpixel_overlays,


rule superpixels:
    """Base superpixels of a dataset's pool, once per setting (seeds-<pixels per superpixel> or oracle)."""
    input:
        f"{RESULTS}/datasets/{{dataset}}.h5",
    output:
        f"{RESULTS}/datasets/{{dataset}}.superpixels-{{spx}}.h5",
    wildcard_constraints:
        spx="seeds-[1-9][0-9]*|oracle",
    params:
        version=CODE_VERSION,
    threads: 8
    log:
        f"{RESULTS}/datasets/logs/{{dataset}}.superpixels-{{spx}}.log",
    conda:
        "../envs/alseg.yaml"
    script:
        "../scripts/superpixels.py"


rule select_superpixel_queries:
    """Round r's superpixel queries and the side file of its regions (merge record, base ids per query)."""
    input:
        dataset=dataset_file,
        superpixels=superpixel_file,
        labels=previous_round_file("labels.npz"),
        inference=superpixel_inference_file,
    output:
        queries=f"{RESULTS}/{{exp}}/round_{{r}}/queries.csv",
        regions=f"{RESULTS}/{{exp}}/round_{{r}}/regions.npz",
    wildcard_constraints:
        exp=SUPERPIXEL_EXP_PATTERN,
    params:
        settings=superpixel_query_settings,
        version=CODE_VERSION,
    log:
        f"{RESULTS}/{{exp}}/round_{{r}}/logs/select_queries.log",
    conda:
        "../envs/alseg.yaml"
    script:
        "../scripts/select_superpixel_queries.py"


ruleorder: select_superpixel_queries > select_queries


rule superpixel_overlays:
    """PNG overlays of a few images per round: base and merged boundaries, queried regions, sieved pixels."""
    input:
        dataset=dataset_file,
        superpixels=superpixel_file,
        regions=round_file("regions.npz"),
        labels=round_file("labels.npz"),
        sieve_model=sieve_model_file,
    output:
        directory(f"{RESULTS}/{{exp}}/round_{{r}}/overlays"),
    wildcard_constraints:
        exp=SUPERPIXEL_EXP_PATTERN,
    params:
        settings=lambda wc: {
            key: EXPERIMENTS[wc.exp][key] for key in ("superpixel", "inference")
        },
        version=CODE_VERSION,
    log:
        f"{RESULTS}/{{exp}}/round_{{r}}/logs/superpixel_overlays.log",
    conda:
        "../envs/alseg.yaml"
    script:
        "../scripts/superpixel_overlays.py"
