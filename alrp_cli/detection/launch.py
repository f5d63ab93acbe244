"""``alrp train --nproc N``: the same command, started N times on this node by torch's own
launcher (``torch.distributed.run``, what the ``torchrun`` command runs), in this process.

Equivalent to ``torchrun --standalone --nproc_per_node N -m alrp_cli train ...``; torchrun
itself stays the way to train on several nodes.
"""

from __future__ import annotations

import signal
from collections.abc import Sequence


def launch_local(nproc: int, argv: Sequence[str]) -> int:
    """Run ``python -m alrp_cli <argv>`` in ``nproc`` processes of one standalone group
    (one per device) and wait; the exit code of the run: 0, or the first failing rank's
    (rank 0's when it failed), or 128 + the signal that stopped the launcher."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    args = get_args_parser().parse_args(
        ["--standalone", f"--nproc_per_node={nproc}", "--module", "alrp_cli"]
    )
    # set, not parsed: torch's parser would read e.g. our --nproc as its --nproc-per-node
    args.training_script_args = list(argv)
    try:
        run(args)
    except ChildFailedError as err:
        failures = err.failures
        first = failures.get(0) or failures[min(failures)]
        code = first.exitcode
        return 128 - code if code < 0 else code  # killed by a signal: negative in torch
    except SignalException as err:
        return 128 + int(err.sigval)
    except KeyboardInterrupt:
        return 128 + int(signal.SIGINT)
    return 0
