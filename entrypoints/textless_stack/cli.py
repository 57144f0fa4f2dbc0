"""textless-stack: the 2021 textless speech stack, runnable today.

Exit codes: 0 success, 1 error (one line on stderr; --verbose adds the traceback),
2 usage error, or some files failed (features, resynth: each listed), 130 interrupted, 143 terminated by SIGTERM
(finished files are kept: rerun to finish).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys

from . import __version__
from .commands import (continue_cmd, demo_cmd, doctor_cmd, export_cmd, features_cmd, inspect_cmd, merge_cmd,
                       models_cmd, parity_cmd, resynth_cmd, selftest_cmd, verify_cmd)
from .errors import Terminated, UserError

COMMANDS = [features_cmd, resynth_cmd, continue_cmd, merge_cmd, verify_cmd, export_cmd, parity_cmd, models_cmd,
            doctor_cmd, inspect_cmd, demo_cmd, selftest_cmd]


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="textless-stack", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--version", action="version", version=f"textless-stack {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", help="debug logging and full tracebacks")
    common.add_argument("--trust-checkpoint", action="store_true",
                        help="allow full unpickling of checkpoint files you vouch for (logged)")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        p = sub.add_parser(command.NAME, help=command.HELP, description=command.__doc__, parents=[common],
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        command.add_arguments(p)
        p.set_defaults(run=command.run)
    return ap


def setup_logging(verbose: bool) -> None:
    if not verbose:
        import warnings

        # fairseq builds its convolutions with the old weight-norm API and torch says so on every model
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\.nn\.utils\.weight_norm")
        warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if not verbose:  # fairseq logs every config it builds at INFO
        for noisy in ("fairseq", "hydra", "numba"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv=None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    if args.command is None:
        ap.print_help()
        return 2
    setup_logging(args.verbose)
    if args.trust_checkpoint:
        from .checkpoint_policy import trust_from_cli

        trust_from_cli()
    signal.signal(signal.SIGTERM, _terminate)
    try:
        return args.run(args)
    except KeyboardInterrupt:
        print("textless-stack: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print("textless-stack: terminated by SIGTERM (preempted, time limit or cancelled): finished files are "
              "kept; rerun the same command to finish", file=sys.stderr)
        return 128 + signal.SIGTERM
    except Exception as e:
        if args.verbose:
            raise
        detail = str(e) if isinstance(e, (UserError, FileNotFoundError)) else f"{type(e).__name__}: {e}"
        print(f"textless-stack: error: {' '.join(detail.split())}", file=sys.stderr)
        return 1


def _terminate(signum, frame):
    # SLURM sends SIGTERM before SIGKILL: unwind (temp files removed, locks released) and say so;
    # a second SIGTERM must not interrupt that cleanup
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Terminated(signal.Signals(signum).name)


if __name__ == "__main__":
    sys.exit(main())
