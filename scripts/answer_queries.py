from alseg.joblog import job_name, logged_step
from alseg.steps import answer_queries

with logged_step(snakemake.log[0], job_name(snakemake.wildcards)):
    answer_queries(
        snakemake.input.dataset,
        snakemake.input.queries,
        snakemake.params.settings,
        int(snakemake.wildcards.r),
        snakemake.output[0],
        **{name: path for name, path in snakemake.input.items() if name not in ("dataset", "queries")},
    )
