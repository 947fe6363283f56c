from alseg.joblog import job_name, logged_step
from alseg.model_job import evaluate, infer, limit_threads, train

round_index = int(snakemake.wildcards.r)
settings = snakemake.params.settings
with logged_step(snakemake.log[0], job_name(snakemake.wildcards)):
    limit_threads(snakemake.threads)
    files = {name: path for name, path in snakemake.input.items() if name not in ("dataset", "labels")}
    train(snakemake.input.dataset, snakemake.input.labels, settings, round_index, snakemake.output.model,
          snakemake.output.log, **files)
    evaluate(snakemake.input.dataset, snakemake.output.model, settings, round_index, snakemake.output.evaluation)
    unit_files = {name: path for name, path in files.items() if name not in ("init_model", "twin_model", "twin_log")}
    infer(snakemake.input.dataset, snakemake.output.model, settings, round_index, snakemake.output.inference,
          labels=snakemake.input.labels, **unit_files)
