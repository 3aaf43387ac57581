"""`megaplane <command>`: the command line of every component.

Each command is a small function that parses upstream-named flags and hands
off to the package that owns the work; nothing else lives here.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Callable, List, Optional

from . import __version__

__all__ = ["main", "build_parser"]


def _humanize_bytes(n: int) -> str:
    """Like go-humanize's Bytes (SI units), which etcdctl uses for sizes."""
    if n < 10:
        return f"{n} B"
    units = ["B", "kB", "MB", "GB", "TB", "PB"]
    value = float(n)
    i = 0
    while value >= 1000 and i < len(units) - 1:
        value /= 1000
        i += 1
    return f"{value:.0f} {units[i]}" if value >= 10 else f"{value:.1f} {units[i]}"


def _table(headers: List[str], rows: List[List[str]]) -> str:
    """An etcdctl-style ASCII table."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) + 2 for i, h in enumerate(headers)]
    sep = "+" + "+".join("-" * w for w in widths) + "+"
    out = [sep, "|" + "|".join(h.center(w) for h, w in zip(headers, widths)) + "|", sep]
    for r in rows:
        out.append("|" + "|".join(_cell(c, w) for c, w in zip(r, widths)) + "|")
    out.append(sep)
    return "\n".join(out)


def _cell(text: str, width: int) -> str:
    if text.isdigit():
        return " " + text.rjust(width - 2) + " "
    return " " + text.ljust(width - 2) + " "


# -- snapshot ---------------------------------------------------------------------


def cmd_snapshot_save(args: argparse.Namespace) -> int:
    from .store import Store, snapshot

    if args.endpoints:
        from .store.etcd_client import save_snapshot_from_endpoint

        info = save_snapshot_from_endpoint(args.endpoints, args.filename)
    else:
        if not args.data_dir:
            print("Error: give --endpoints of a running store or --data-dir of a stopped one", file=sys.stderr)
            return 2
        store = Store(args.data_dir)
        try:
            info = snapshot.write(args.filename, snapshot.capture(store))
        finally:
            store.close()
    print(f"Snapshot saved at {args.filename}")
    if args.write_out == "json":
        print(json.dumps(info))
    return 0


def cmd_snapshot_restore(args: argparse.Namespace) -> int:
    from .store import snapshot

    try:
        info = snapshot.restore_data_dir(args.filename, args.data_dir)
    except snapshot.SnapshotError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    print(f"restored snapshot {args.filename} (revision {info['revision']}, {info['totalKey']} keys) to {args.data_dir}")
    return 0


def cmd_snapshot_status(args: argparse.Namespace) -> int:
    from .store import snapshot

    try:
        st = snapshot.status(args.filename)
    except snapshot.SnapshotError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    if args.write_out == "json":
        print(json.dumps(st))
    else:
        print(
            _table(
                ["HASH", "REVISION", "TOTAL KEYS", "TOTAL SIZE"],
                [["%x" % st["hash"], str(st["revision"]), str(st["totalKey"]), _humanize_bytes(int(st["totalSize"]))]],  # type: ignore[call-overload]
            )
        )
    return 0


def _add_snapshot(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser(
        "snapshot",
        help="save, restore and inspect store snapshots (the etcd backup/restore drill)",
        description="Save a consistent point-in-time copy of the store to one file, restore it "
        "into a new data dir, or show a snapshot's status (like etcdctl snapshot).",
    )
    ss = p.add_subparsers(dest="snapshot_command", required=True, metavar="save|restore|status")
    save = ss.add_parser("save", help="write a snapshot of a running or stopped store to FILENAME")
    save.add_argument("filename")
    save.add_argument("--endpoints", help="client URL of a running `megaplane store` (etcd v3 API)")
    save.add_argument("--data-dir", help="data dir of a stopped store")
    save.add_argument("-w", "--write-out", choices=["simple", "json"], default="simple")
    save.set_defaults(func=cmd_snapshot_save)
    restore = ss.add_parser("restore", help="create a new data dir from a snapshot file")
    restore.add_argument("filename")
    restore.add_argument("--data-dir", required=True, help="the new data dir (must not exist or be empty)")
    restore.set_defaults(func=cmd_snapshot_restore)
    status = ss.add_parser("status", help="show a snapshot's hash, revision, key count and size")
    status.add_argument("filename")
    status.add_argument("-w", "--write-out", choices=["table", "json"], default="table")
    status.set_defaults(func=cmd_snapshot_status)


# -- parser -----------------------------------------------------------------------

_ADDERS: List[Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]] = [_add_snapshot]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="megaplane",
        description="megaplane: a Kubernetes-compatible control plane built for a million nodes.",
    )
    parser.add_argument("--version", action="version", version=f"megaplane {__version__}")
    parser.add_argument("-v", "--v", dest="verbosity", type=int, default=0, help="log verbosity (0-4)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="<command>")
    for add in _ADDERS:
        add(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbosity, logging.DEBUG)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    func: Callable[[argparse.Namespace], int] = args.func
    return func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
