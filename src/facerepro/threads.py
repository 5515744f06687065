"""One job's thread budget, applied to every thread pool its process may start.

Snakemake runs jobs side by side and gives each ``threads`` cores, but torch, OpenMP, the BLAS
libraries, faiss and OpenCV each size their own pool to *every* core of the machine. Two jobs
on two cores then run four or more busy threads that spin on and preempt each other (OpenMP
threads busy-wait between parallel regions), and each runs slower than alone. Every script
calls :func:`use_threads` with ``snakemake.threads`` first, before it imports anything heavy.

The environment variables reach the libraries not loaded yet (each reads its variable once,
when it loads: torch's intra-op pool, libgomp, OpenBLAS, MKL, OpenCV) and child processes
(``torchrun`` workers, process pools). Pools already loaded are resized in place: BLAS and
OpenMP through threadpoolctl, torch, faiss and OpenCV through their own calls. None of these
modules is imported here: a job that never uses torch does not pay its import for this.
"""

from __future__ import annotations

import os
import sys

from threadpoolctl import threadpool_limits

# read when the library loads: OpenMP (torch's intra-op pool, faiss), MKL, OpenBLAS, OpenCV
ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
            "OPENCV_FOR_THREADS_NUM")


def use_threads(n: int) -> None:
    """Make this process, and the processes it starts, compute on ``n`` threads.

    ``n`` is the job's Snakemake ``threads``; it overrides any of :data:`ENV_VARS` set outside.
    """
    n = int(n)
    if n < 1:
        raise ValueError(f"a job needs at least one thread, not {n}")
    for var in ENV_VARS:
        os.environ[var] = str(n)
    threadpool_limits(limits=n)     # BLAS and OpenMP libraries loaded already, for good
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)
    if "faiss" in sys.modules:
        sys.modules["faiss"].omp_set_num_threads(n)
    if "cv2" in sys.modules:
        sys.modules["cv2"].setNumThreads(n)
