from facerepro.threads import use_threads

use_threads(snakemake.threads)     # first: every pool loaded below takes the job's threads

from facerepro.data.clean import build_manifest, overlap_names, write_manifest
from facerepro.data.protocols import hold_out_identities
from facerepro.runlog import to_file

to_file(snakemake.log[0])
params = snakemake.params
options = params.clean
exclude = overlap_names(params.overlap, lists=options["overlap_lists"])
manifest = build_manifest(params.root, layout=params.layout, split=params.split,
                          min_side=options["min_side"], min_images=options["min_images"],
                          exclude=exclude, workers=snakemake.threads)
if params.holdout:
    manifest = hold_out_identities(manifest, **params.holdout)
write_manifest(manifest, dest=snakemake.output[0])
