"""How a rank started by torch.multiprocessing.spawn ends once its results are on disk."""
import os

import torch.distributed as dist


def leave() -> None:
    """Leave together, without tearing down the gloo process group.

    Freeing a DDP model's reducer can drop the last reference to its process group while holding
    the GIL, and ProcessGroupGloo's destructor then joins worker threads that wait for the GIL
    (pytorch/pytorch#56297): a CI run hung there for good. os._exit skips that teardown.
    """
    dist.barrier()
    os._exit(0)
