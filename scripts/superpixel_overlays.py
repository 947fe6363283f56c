from alseg.joblog import job_name, logged_step
from alseg.units.superpixel.overlays import write_superpixel_overlays

with logged_step(snakemake.log[0], job_name(snakemake.wildcards)):
    write_superpixel_overlays(
        snakemake.input.dataset,
        snakemake.input.superpixels,
        snakemake.input.regions,
        snakemake.input.labels,
        snakemake.params.settings,
        int(snakemake.wildcards.r),
        snakemake.output[0],
        sieve_model=snakemake.input.sieve_model or None,
    )
