from alseg.joblog import job_name, logged_step
from alseg.steps import write_metrics

with logged_step(snakemake.log[0], job_name(snakemake.wildcards)):
    write_metrics(snakemake.input.evaluation, snakemake.input.labels, snakemake.wildcards.exp,
                  snakemake.params.description, snakemake.output[0])
