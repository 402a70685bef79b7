"""``genagent-adapter calls``: the call history from the store in use (STORE_URL)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

from adapter.config import EnvReader
from adapter.history.listing import MAX_LIMIT, OUTCOMES, CallQuery, list_calls, show_call
from adapter.history.render import call_lines, story_lines
from adapter.history.since import parse_since
from adapter.store import CallStore, StoreError, StoreOptions, open_store, read_store_url


def add_calls_command(commands: Any, parents: Sequence[argparse.ArgumentParser] = ()) -> None:
    """Register ``calls`` (and ``calls show CALL_ID``) on the CLI's sub-parsers."""
    calls = commands.add_parser(
        "calls",
        help="list recent calls, or show one call's timeline (reads $STORE_URL or $REDIS_URL)",
        parents=list(parents),
    )
    calls.add_argument("--outcome", choices=OUTCOMES, help="only calls that ended so")
    calls.add_argument("--since", help="only calls written since: 15m, 2h, 1d or an ISO time")
    calls.add_argument(
        "--limit", type=_limit, default=50, help=f"at most this many (default 50, max {MAX_LIMIT})"
    )
    calls.add_argument("--json", action="store_true", help="print JSON, as /calls serves it")
    calls.set_defaults(run=_list)
    actions = calls.add_subparsers(dest="calls_command", metavar="show")
    show = actions.add_parser("show", help="one call's whole timeline", parents=list(parents))
    show.add_argument("call_id", metavar="CALL_ID")
    show.add_argument("--json", action="store_true", help="print JSON, as /calls/<id> serves it")
    show.set_defaults(run=_show)


def _list(args: argparse.Namespace) -> int:
    try:
        return _print_list(args)
    except StoreError as exc:
        print(f"genagent-adapter: {exc}", file=sys.stderr)
        return 2


def _show(args: argparse.Namespace) -> int:
    try:
        return _print_story(args)
    except StoreError as exc:
        print(f"genagent-adapter: {exc}", file=sys.stderr)
        return 2


def _print_list(args: argparse.Namespace) -> int:
    now = time.time()
    since = parse_since(args.since, now) if args.since else None
    query = CallQuery(limit=args.limit, since=since, outcome=args.outcome)
    with _open() as store:
        history = list_calls(store, query, now)
    if args.json:
        _print_json(history)
    else:
        print("\n".join(call_lines(history["calls"])))
    return 0


def _print_story(args: argparse.Namespace) -> int:
    with _open() as store:
        call = show_call(store, args.call_id, time.time())
    if call is None:
        print(f"genagent-adapter: no call {args.call_id[:128]!r} in the store", file=sys.stderr)
        return 1
    if args.json:
        _print_json(call)
    else:
        print("\n".join(story_lines(call)))
    return 0


def _open() -> CallStore:
    """The store the app uses (STORE_URL or REDIS_URL, STORE_KEY_PREFIX, STORE_TLS_VERIFY)."""
    env = EnvReader()
    url = read_store_url(env)
    options = StoreOptions.read(env)
    env.check()
    # Opening a SQLite URL creates the file: a mistyped path would show an empty history.
    scheme, _, rest = url.partition("://")
    path = rest[1:] if scheme.lower() == "sqlite" and rest.startswith("/") else ""
    if path and not os.path.exists(path):
        raise StoreError(f"no call store at {os.path.abspath(path)} (STORE_URL)")
    return open_store(url, options)


def _print_json(value: object) -> None:
    json.dump(value, sys.stdout, indent=2)
    sys.stdout.write("\n")


def _limit(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text[:20]!r}") from None
    if not 1 <= value <= MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_LIMIT}")
    return value
