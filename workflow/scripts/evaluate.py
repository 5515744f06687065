from facerepro.threads import use_threads

use_threads(snakemake.threads)     # first: every pool loaded below takes the job's threads

from facerepro.evaluation.protocol import run_protocol
from facerepro.runlog import to_file

to_file(snakemake.log[0])
params = snakemake.params
run_protocol(run=snakemake.wildcards.run, name=snakemake.wildcards.protocol,
             protocol=params.protocol, features_paths=snakemake.input.features,
             dataset_root=params.root, dest=snakemake.output[0], run_config=params.run,
             jb_train_path=snakemake.input.get("jb_train"),
             train_path=snakemake.input.get("train"), train_root=params.train_root,
             faces_path=snakemake.input.faces, manifest_path=snakemake.input.manifest)
