from alseg.steps import logged_step
from alseg.steps_superpixel import select_superpixel_queries

with logged_step(snakemake.log[0]):
    select_superpixel_queries(
        snakemake.input.dataset,
        snakemake.input.superpixels,
        snakemake.params.settings,
        int(snakemake.wildcards.r),
        snakemake.output.queries,
        snakemake.output.regions,
        labels=snakemake.input.labels or None,
        inference=snakemake.input.inference or None,
    )
