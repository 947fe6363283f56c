from alseg.steps import limit_threads, logged_step, train

with logged_step(snakemake.log[0]):
    limit_threads(snakemake.threads)
    train(
        snakemake.input.dataset,
        snakemake.input.labels,
        snakemake.params.settings,
        int(snakemake.wildcards.r),
        snakemake.output.model,
        snakemake.output.log,
        init_model=snakemake.input.init_model or None,
    )
