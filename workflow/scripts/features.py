from pathlib import Path

import torch

from facerepro.features import extract
from facerepro.runlog import to_file
from facerepro.training.trainer import resolve_device

to_file(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
extract(snakemake.input.model, Path(snakemake.input.shard[0]).parent, snakemake.output[0],
        split=snakemake.params.split, device=resolve_device(snakemake.params.device))
