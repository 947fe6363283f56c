from alseg.steps import answer_queries, logged_step

with logged_step(snakemake.log[0]):
    answer_queries(
        snakemake.input.dataset,
        snakemake.input.queries,
        snakemake.params.settings,
        int(snakemake.wildcards.r),
        snakemake.output[0],
        superpixels=snakemake.input.superpixels or None,
        regions=snakemake.input.regions or None,
        human=snakemake.input.human or None,
    )
