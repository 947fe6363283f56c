from alseg.steps import evaluate, infer, limit_threads, logged_step, train

round_index = int(snakemake.wildcards.r)
with logged_step(snakemake.log[0]):
    limit_threads(snakemake.threads)
    train(
        snakemake.input.dataset,
        snakemake.input.labels,
        snakemake.params.settings,
        round_index,
        snakemake.output.model,
        snakemake.output.log,
        init_model=snakemake.input.init_model or None,
        superpixels=snakemake.input.superpixels or None,
        sieve_model=snakemake.input.sieve_model or None,
        twin_model=snakemake.input.twin_model or None,
        twin_log=snakemake.input.twin_log or None,
    )
    evaluate(
        snakemake.input.dataset,
        snakemake.output.model,
        snakemake.input.labels,
        snakemake.wildcards.exp,
        snakemake.params.settings,
        round_index,
        snakemake.output.metrics,
    )
    infer(
        snakemake.input.dataset,
        snakemake.output.model,
        snakemake.params.settings,
        round_index,
        snakemake.output.inference,
        superpixels=snakemake.input.superpixels or None,
    )
