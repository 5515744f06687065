# Fetch (checksum-verified) -> extract (safe) -> clean (manifest of every file).
from dataclasses import asdict


rule synth_mirror:
    """Generate SynthFaces in the real datasets' formats, packed as a local file:// mirror."""
    output:
        paths.mirror_file(file="SHA256SUMS"),
    params:
        spec=lambda wc: source_config(wc.source),
    log:
        paths.log("synth_mirror", "{source}"),
    benchmark:
        paths.benchmark("synth_mirror", "{source}")
    threads: 2
    priority: PRIORITY_DATA
    conda:
        "../workflow/envs/facerepro.yaml"
    script:
        "../workflow/scripts/synth_mirror.py"


rule fetch:
    """Copy one file from its source and keep it only if its sha256 matches."""
    input:
        unpack(fetch_inputs),
    output:
        paths.download(),
    params:
        spec=lambda wc: source_config(wc.source),
    log:
        paths.log("fetch", "{source}/{file}"),
    benchmark:
        paths.benchmark("fetch", "{source}/{file}")
    threads: 1
    priority: PRIORITY_DATA
    conda:
        "../workflow/envs/facerepro.yaml"
    script:
        "../workflow/scripts/fetch.py"


rule extract:
    """Unpack a part's archives (refusing unsafe members) and copy its plain files; a folder
    source's folder is copied instead (hard links where possible)."""
    input:
        extract_inputs,
    output:
        paths.extracted_marker(),
    params:
        folder=folder_params,
    log:
        paths.log("extract", "{dataset}"),
    benchmark:
        paths.benchmark("extract", "{dataset}")
    threads: 1
    priority: PRIORITY_DATA
    conda:
        "../workflow/envs/facerepro.yaml"
    script:
        "../workflow/scripts/extract.py"


rule clean:
    """Decode every image; the manifest keeps or quarantines each file with a reason."""
    input:
        marker=paths.extracted_marker(),
        # Evaluation parts whose people are removed from this (training) part.
        overlap=lambda wc: [
            paths.extracted_marker(d)
            for d in registry.clean_settings(wc.dataset, config["datasets"]).overlap_with
        ],
    output:
        paths.manifest(),
    params:
        layout=lambda wc: part(wc.dataset).layout,
        split=lambda wc: part(wc.dataset).split,
        root=lambda wc: paths.extracted(wc.dataset),
        holdout=lambda wc: config["holdout"].get(wc.dataset),
        clean=lambda wc: asdict(registry.clean_settings(wc.dataset, config["datasets"])),
        overlap=lambda wc: {
            d: (paths.extracted(d), part(d).layout)
            for d in registry.clean_settings(wc.dataset, config["datasets"]).overlap_with
        },
    log:
        paths.log("clean", "{dataset}"),
    benchmark:
        paths.benchmark("clean", "{dataset}")
    threads: data_threads(4)
    priority: PRIORITY_DATA
    conda:
        "../workflow/envs/facerepro.yaml"
    script:
        "../workflow/scripts/clean.py"
