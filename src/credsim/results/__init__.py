"""Run folders, queries over them and their headline figures."""


def use_system_allocator() -> None:
    """Have Arrow allocate with the system's allocator. Arrow's default keeps freed
    buffers for reuse; at national scale that retention (tens of MB of ledger and table
    buffers) counts against the memory budget, and the system's returns them."""
    import pyarrow as pa

    pa.set_memory_pool(pa.system_memory_pool())
