from alseg.joblog import job_name, logged_step
from alseg.steps import update_labels

with logged_step(snakemake.log[0], job_name(snakemake.wildcards)):
    update_labels(
        snakemake.input.dataset,
        snakemake.input.queries,
        snakemake.input.answers,
        int(snakemake.wildcards.r),
        snakemake.output[0],
        costs=snakemake.params.costs,
        **{name: path for name, path in snakemake.input.items() if name not in ("dataset", "queries", "answers")},
    )
