"""`novastress-realnova up|down|status|logs`: a real Nova 34 on 127.0.0.1.

    novastress-realnova up                       # first time: installs, then starts (minutes)
    novastress-realnova up --flavors 2 --compute-hosts 3
    novastress-realnova up --fresh               # a clean cloud: no earlier run's resources
    novastress-realnova up --with-cinder         # and Cinder 29 (kept by later ups until --without-cinder)
    novastress-realnova status
    novastress-realnova logs nova-compute-compute-1 -n 50
    novastress-realnova down
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .stack import Shape, Stack, StackError, tail


def default_dir() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "novastress-realnova"


def _count(low: int, high: int):
    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
        if not low <= number <= high:
            raise argparse.ArgumentTypeError(f"{number} is outside {low}..{high}")
        return number
    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="novastress-realnova", description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=default_dir(),
                        help="state directory: virtualenvs, configs, databases, logs (default: %(default)s)")
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="install what is missing and start the stack (a no-op when it runs)")
    up.add_argument("--flavors", type=_count(1, 6), default=1, help="public flavors to offer (>= 2 lets resize run)")
    up.add_argument("--compute-hosts", type=_count(1, 8), default=1,
                    help="simulated compute hosts, one nova-compute process each")
    cinder = up.add_mutually_exclusive_group()
    cinder.add_argument("--with-cinder", dest="cinder", action="store_const", const=True,
                        help="add Cinder 29 (cinder-api, -scheduler, -volume; a backend that stores nothing) "
                             "and list it in the catalog, so the volume actions run; a later up keeps it "
                             "until --without-cinder (the first time installs it into venv-nova, about 20 s)")
    cinder.add_argument("--without-cinder", dest="cinder", action="store_const", const=False,
                        help="stop Cinder and take it out of the catalog (the volume actions are then skipped)")
    up.add_argument("--fresh", action="store_true",
                    help="stop the stack and forget its databases, images, instances and logs first, so that "
                         "no earlier run's servers, volumes or allocations are in the cloud (the installed "
                         "virtualenvs are kept; about a minute more than a plain up)")
    up.add_argument("--clouds-yaml", type=Path,
                    help="write clouds 'realnova' (member) and 'realnova-admin' here (default: DIR/clouds.yaml)")
    commands.add_parser("down", help="stop every daemon the stack started")
    commands.add_parser("status", help="each daemon, its pid and whether it answers")
    service = commands.add_parser("service", help="start, stop, restart, kill, freeze or thaw one daemon "
                                  "(what --fault-preset realnova runs)")
    service.add_argument("verb", choices=("start", "stop", "restart", "kill", "freeze", "thaw"))
    service.add_argument("name", help="a daemon as 'status' names it, e.g. nova-compute-compute-1")
    logs = commands.add_parser("logs", help="list the log files, or print the end of one")
    logs.add_argument("service", nargs="?", help="a log's name without .log, e.g. nova-api")
    logs.add_argument("-n", "--lines", type=_count(1, 1_000_000), default=40)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    stack = Stack(args.dir)
    try:
        if args.command == "up":
            # Cinder is part of the shape until said otherwise: what the last up had
            cinder = stack.recorded_shape().cinder if args.cinder is None else args.cinder
            stack.up(Shape(args.flavors, args.compute_hosts, cinder), args.clouds_yaml or stack.path("clouds.yaml"),
                     fresh=args.fresh)
        elif args.command == "down":
            stack.down()
        elif args.command == "service":
            print(stack.service(args.verb, args.name))
        elif args.command == "status":
            rows = stack.status()
            for row in rows:
                print(f"{row.name:<26} {row.state:<14} {row.pid or '-':<8} {row.log}")
            return 0 if all(row.state == "running" for row in rows) else 1
        elif args.command == "logs":
            files = stack.log_files()
            if not args.service:
                for path in files:
                    print(path)
                return 0
            chosen = [path for path in files if path.stem == args.service]
            if not chosen:
                names = ", ".join(path.stem for path in files) or "none yet"
                print(f"novastress-realnova: no log named {args.service!r}; logs: {names}", file=sys.stderr)
                return 2
            for line in tail(chosen[0], args.lines):
                print(line)
    except StackError as error:
        print(f"novastress-realnova: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("novastress-realnova: interrupted; run 'novastress-realnova down' to stop what started",
              file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
