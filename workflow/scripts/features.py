from facerepro.threads import use_threads

use_threads(snakemake.threads)     # first: every pool loaded below takes the job's threads

from pathlib import Path

from facerepro.features import extract
from facerepro.runlog import to_file
from facerepro.training.launch import leased_device
from facerepro.views import View

to_file(snakemake.log[0])
with leased_device(snakemake.params.device) as device:
    extract(model_path=snakemake.input.model, shard_dir=Path(snakemake.input.shard[0]).parent,
            dest=snakemake.output[0], view=View.parse(snakemake.wildcards.view),
            layers=snakemake.params.layers, flip_merge=snakemake.params.flip_merge,
            device=device, imbalance=snakemake.params.imbalance)
