from alseg.steps import logged_step, select_queries

with logged_step(snakemake.log[0]):
    select_queries(
        snakemake.input.dataset,
        snakemake.params.settings,
        int(snakemake.wildcards.r),
        snakemake.output[0],
        labels=snakemake.input.labels or None,
        inference=snakemake.input.inference or None,
    )
