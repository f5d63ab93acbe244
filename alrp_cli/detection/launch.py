"""What ``alrp train`` runs in each process it is started as: alone, under torchrun, or as
the launcher of ``--nproc N``.

``alrp train --nproc N`` is the same command, started N times on this node by torch's own
launcher (``torch.distributed.run``, what the ``torchrun`` command runs), in this process:
equivalent to ``torchrun --standalone --nproc_per_node N -m alrp_cli train ...``; torchrun
itself stays the way to train on several nodes.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from alrp_cli.errors import AlrpError

if TYPE_CHECKING:
    from alrp_cli.config.training import TrainConfig
    from alrp_cli.detection.train import TrainResult


def run_training(
    config: TrainConfig,
    argv: Sequence[str],
    *,
    on_event: Callable[[dict[str, Any]], None] | None = None,
) -> TrainResult | int:
    """Train as ``config`` says, in the role of this process; ``argv``: the command's
    arguments (what ``--nproc`` starts again).

    Started by the user (not by torchrun): the options and the machine's limits are checked
    here, once (a bad option is one line, not one per process); with ``nproc`` > 1 the
    command is launched in ``nproc`` processes and their exit code returned
    (:func:`launch_local`); else the run's :class:`~alrp_cli.detection.train.TrainResult`.
    Under torchrun: rank 0 trains, reports ``on_event`` and returns its result; any other
    rank trains silently and returns its exit code (0; an error's, which rank 0 reports;
    130 after Ctrl-C).
    """
    from alrp_cli.detection import train as training
    from alrp_cli.detection.distributed import env_rank, launched_by_torchrun

    if not launched_by_torchrun():
        config.validate()
        config.check_machine()
        if config.runtime.nproc > 1:
            return launch_local(config.runtime.nproc, argv)
    elif env_rank() != 0:
        try:
            training.train(config)
        except AlrpError as err:
            return err.exit_code
        except KeyboardInterrupt:
            return 128 + int(signal.SIGINT)
        return 0
    return training.train(config, on_event=on_event)


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
