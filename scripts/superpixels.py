from alseg.joblog import logged_step
from alseg.units.superpixel.files import compute_base_superpixels, parse_superpixel_setting

with logged_step(snakemake.log[0], f"{snakemake.wildcards.dataset} superpixels"):
    method, size = parse_superpixel_setting(snakemake.wildcards.spx)
    compute_base_superpixels(snakemake.input[0], method, size, snakemake.output[0], workers=snakemake.threads)
