"""How many threads the kernels use.

The kernels give the same results with any number of threads. Below
`PARALLEL_FROM` people a day's parallel work is too small to pay for waking
the threads, and on a busy machine the OpenMP threads' waiting at every
parallel region made small runs five to eight times slower (a sesame run
of 100,000 people took 26-31 s on two threads and 5 s on one while other
processes kept both cores busy). So small runs use one thread.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

PARALLEL_FROM = 500_000  # people


@contextmanager
def kernel_threads(people: int) -> Iterator[None]:
    import numba

    before = numba.get_num_threads()
    if people < PARALLEL_FROM and before > 1:
        numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(before)
