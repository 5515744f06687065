# Landmarks per dataset part (its own file or MTCNN), then one aligned shard per crop template.
from facerepro.align.landmark_policy import source_for
from facerepro.align.mtcnn_weights import NETS as MTCNN_NETS


rule mtcnn_weights:
    """MTCNN's standard weights, unpacked from the facenet-pytorch wheel (pip download, every
    file sha256-checked); the only rule of this file that needs the network."""
    output:
        [paths.mtcnn_weights(net) for net in MTCNN_NETS],
    log:
        paths.log("mtcnn_weights", "mtcnn"),
    benchmark:
        paths.benchmark("mtcnn_weights", "mtcnn")
    threads: 1
    conda:
        "../workflow/envs/facerepro.yaml"
    script:
        "../workflow/scripts/mtcnn_weights.py"


rule landmarks:
    """Five landmarks per kept image: the dataset's file, or MTCNN (config align.landmarks)."""
    input:
        manifest=paths.manifest(),
        extracted=paths.extracted_marker(),
        weights=lambda wc: (
            [paths.mtcnn_weights(net) for net in MTCNN_NETS]
            if source_for(config, wc.dataset) == "mtcnn"
            else []
        ),
    output:
        paths.landmarks(),
    params:
        root=lambda wc: paths.extracted(wc.dataset),
        layout=lambda wc: part(wc.dataset).layout,
        source=lambda wc: source_for(config, wc.dataset),
        mtcnn=config["align"]["mtcnn"],
        multi_face=config["align"]["multi_face"],
        device=config["device"],
    resources:
        gpu=lambda wc: gpus_per_job(1) if source_for(config, wc.dataset) == "mtcnn" else 0,
    log:
        paths.log("landmarks", "{dataset}"),
    benchmark:
        paths.benchmark("landmarks", "{dataset}")
    threads: data_threads(2)
    priority: PRIORITY_DATA
    conda:
        "../workflow/envs/facerepro.yaml"
    script:
        "../workflow/scripts/landmarks.py"


rule faces:
    """Which faces the part aligns (align.no_face, align.multi_face): counts and ids of the
    fallbacks, multi-face choices and drops, and a QA grid of those images."""
    input:
        manifest=paths.manifest(),
        landmarks=paths.landmarks(),
        extracted=paths.extracted_marker(),
    output:
        summary=paths.faces_summary(),
        qa=paths.faces_qa(),
    params:
        root=lambda wc: paths.extracted(wc.dataset),
        no_face=config["align"]["no_face"],
        multi_face=config["align"]["multi_face"],
    log:
        paths.log("faces", "{dataset}"),
    benchmark:
        paths.benchmark("faces", "{dataset}")
    threads: 1
    priority: PRIORITY_DATA
    conda:
        "../workflow/envs/facerepro.yaml"
    script:
        "../workflow/scripts/faces.py"


rule align:
    """Warp every kept image the face policy keeps to the crop template; a memory-mapped shard,
    its index, a QA grid."""
    input:
        manifest=paths.manifest(),
        landmarks=paths.landmarks(),
        faces=paths.faces_summary(),
        extracted=paths.extracted_marker(),
    output:
        images=paths.aligned_images(),
        index=paths.aligned_index(),
        qa=report(
            paths.aligned_qa(),
            caption="../workflow/report/qa.rst",
            category="Data and alignment",
            labels={"dataset": "{dataset}", "template": "{template}"},
        ),
    params:
        root=lambda wc: paths.extracted(wc.dataset),
        scale=config["align"]["scale"],
        margin=config["align"]["box_margin"],
    log:
        paths.log("align", "{dataset}/{template}"),
    benchmark:
        paths.benchmark("align", "{dataset}/{template}")
    threads: data_threads(2)
    priority: PRIORITY_DATA
    conda:
        "../workflow/envs/facerepro.yaml"
    script:
        "../workflow/scripts/align.py"
