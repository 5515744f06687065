from facerepro.data.clean import build_manifest, write_manifest
from facerepro.runlog import to_file

to_file(snakemake.log[0])
manifest = build_manifest(snakemake.params.root, snakemake.params.layout, snakemake.params.split)
write_manifest(manifest, snakemake.output[0])
