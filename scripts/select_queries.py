from alseg.joblog import job_name, logged_step
from alseg.steps import select_queries

with logged_step(snakemake.log[0], job_name(snakemake.wildcards)):
    select_queries(
        snakemake.input.dataset,
        snakemake.params.settings,
        int(snakemake.wildcards.r),
        snakemake.output.queries,
        **{name: path for name, path in snakemake.input.items() if name != "dataset"},
        **{name: path for name, path in snakemake.output.items() if name != "queries"},
    )
