from alseg.data import prepare_dataset
from alseg.joblog import logged_step

with logged_step(snakemake.log[0]):
    prepare_dataset(snakemake.params.spec, snakemake.output[0])
