from facerepro.data.clean import build_manifest, overlap_names, write_manifest
from facerepro.data.protocols import hold_out_identities
from facerepro.runlog import to_file

to_file(snakemake.log[0])
options = snakemake.params.clean
exclude = overlap_names(snakemake.params.overlap, options["overlap_lists"])
manifest = build_manifest(snakemake.params.root, snakemake.params.layout, snakemake.params.split,
                          options["min_side"], min_images=options["min_images"], exclude=exclude,
                          workers=snakemake.threads)
if snakemake.params.holdout:
    manifest = hold_out_identities(manifest, **snakemake.params.holdout)
write_manifest(manifest, snakemake.output[0])
