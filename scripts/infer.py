from alseg.steps import infer, limit_threads, logged_step

with logged_step(snakemake.log[0]):
    limit_threads(snakemake.threads)
    infer(
        snakemake.input.dataset,
        snakemake.input.model,
        snakemake.params.settings,
        int(snakemake.wildcards.r),
        snakemake.output[0],
    )
