from facerepro.threads import use_threads

use_threads(snakemake.threads)     # first: every pool loaded below takes the job's threads

from pathlib import Path

from facerepro.runlog import to_file
from facerepro.training.launch import run_job

to_file(snakemake.log[0])
params = snakemake.params
run_job(run_name=snakemake.wildcards.run, run=params.run,
        shard_dir=Path(snakemake.input.images).parent, model_path=snakemake.output.model,
        info_path=snakemake.output.info, checkpoint_dir=params.checkpoints,
        device=params.device, dataset_root=params.root, init_path=snakemake.input.get("init"))
