from pathlib import Path

import torch

from facerepro.runlog import to_file
from facerepro.training.launch import run_job

to_file(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
run_job(snakemake.wildcards.run, snakemake.params.run, Path(snakemake.input.images).parent,
        snakemake.output.model, snakemake.output.info, snakemake.params.checkpoints,
        snakemake.params.device, snakemake.params.root, snakemake.input.get("init"))
