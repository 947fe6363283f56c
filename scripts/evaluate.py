from alseg.steps import evaluate, limit_threads, logged_step

with logged_step(snakemake.log[0]):
    limit_threads(snakemake.threads)
    evaluate(
        snakemake.input.dataset,
        snakemake.input.model,
        snakemake.input.labels,
        snakemake.wildcards.exp,
        snakemake.params.settings,
        int(snakemake.wildcards.r),
        snakemake.output[0],
    )
