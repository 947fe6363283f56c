from alseg.steps import logged_step, update_labels

with logged_step(snakemake.log[0]):
    update_labels(
        snakemake.input.dataset,
        snakemake.input.queries,
        snakemake.input.answers,
        int(snakemake.wildcards.r),
        snakemake.output[0],
        previous=snakemake.input.previous or None,
        regions=snakemake.input.regions or None,
        costs=snakemake.params.costs,
    )
