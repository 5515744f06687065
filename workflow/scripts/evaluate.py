from facerepro.evaluation.protocol import run_protocol
from facerepro.runlog import to_file

to_file(snakemake.log[0])
run_protocol(snakemake.wildcards.run, snakemake.wildcards.protocol, snakemake.params.protocol,
             snakemake.input.features, snakemake.params.root, snakemake.output[0],
             snakemake.params.run, snakemake.input.get("jb_train"), snakemake.input.get("train"),
             snakemake.params.train_root)
