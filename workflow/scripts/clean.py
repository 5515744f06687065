from facerepro.data.clean import build_manifest, write_manifest
from facerepro.data.protocols import hold_out_identities
from facerepro.runlog import to_file

to_file(snakemake.log[0])
manifest = build_manifest(snakemake.params.root, snakemake.params.layout, snakemake.params.split)
if snakemake.params.holdout:
    manifest = hold_out_identities(manifest, **snakemake.params.holdout)
write_manifest(manifest, snakemake.output[0])
