from alseg.joblog import job_name, logged_step
from alseg.model_job import infer, limit_threads

with logged_step(snakemake.log[0], job_name(snakemake.wildcards)):
    limit_threads(snakemake.threads)
    files = {name: path for name, path in snakemake.input.items() if name not in ("dataset", "model")}
    infer(snakemake.input.dataset, snakemake.input.model, snakemake.params.settings, int(snakemake.wildcards.r),
          snakemake.output[0], shard=int(snakemake.wildcards.k), **files)
