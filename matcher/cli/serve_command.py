"""``matcher serve``: the HTTP matching service, and ``matcher serve keys add/list/revoke``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import shutil
import sys
import tempfile
from typing import Any

from ..errors import UsageError
from .common import EXIT_OK, EXIT_USAGE, add_common_options, algorithm_distance, max_distances, positive_int

#: ``matcher serve``'s defaults (the README's "Service" section).
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080


def add_serve_parser(sub: Any) -> None:
    """Add ``matcher serve`` (and ``serve keys``) to the command's subparsers."""
    sub.add_parser(
        "serve",
        help="run the HTTP matching service (and manage its API keys: serve keys)",
        description="Serve INDEX over HTTP: POST /v1/match (an image), POST /v1/lookup (hashes), POST /v1/hash, "
        "GET /v1/index, /healthz, /metrics, /openapi.json, and HMA 2.0's /m/raw_lookup, /m/lookup and "
        "/m/index/status. API keys are required (create one with 'matcher serve keys add NAME') unless "
        "--no-auth on the loopback interface. A new generation of INDEX (matcher index add/remove in another "
        "process) is served without a restart. Exit 0 after a clean shutdown (Ctrl-C, SIGTERM), 2 when it "
        "cannot start (bad usage, index unreadable, no key, port in use).",
        populate=_add_serve_arguments,
    )


def _add_config_argument(p: argparse.ArgumentParser) -> None:
    from ..serve.config import DEFAULT_CONFIG_DIR

    p.add_argument(
        "--config",
        metavar="DIR",
        default=os.environ.get("MATCHER_SERVE_DIR", DEFAULT_CONFIG_DIR),
        help="directory of the service's keys.json (API keys, stored hashed) and audit.jsonl "
        "(default: $MATCHER_SERVE_DIR, else %(default)s)",
    )


def _add_serve_arguments(s: argparse.ArgumentParser) -> None:
    s.add_argument("--index", "-i", metavar="INDEX", help="the index to serve (read-only)")
    s.add_argument("--host", default=DEFAULT_HOST, help="address to listen on (default: %(default)s)")
    s.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (default: %(default)s; 0: any free port)")
    s.add_argument("--workers", type=positive_int, default=1, help="server processes (default: 1)")
    s.add_argument("--no-auth", action="store_true", help="no API keys (refused unless --host is a loopback address)")
    _add_config_argument(s)
    s.add_argument("--audit-log", metavar="FILE", help="the audit log (JSON Lines; default: DIR/audit.jsonl)")
    s.add_argument("--ssl-certfile", metavar="FILE", help="TLS certificate (PEM); with --ssl-keyfile")
    s.add_argument("--ssl-keyfile", metavar="FILE", help="TLS private key (PEM)")
    s.add_argument("--algorithms", "-a", help="algorithms to match (default: every algorithm the index holds)")
    s.add_argument(
        "--max-distance",
        type=algorithm_distance,
        action="append",
        default=[],
        metavar="ALGO=N",
        help="largest distance counted as a match for ALGO, and the most a lookup may ask for (default: the "
        "algorithm's own)",
    )
    s.add_argument("--max-body-bytes", type=positive_int, default=32 * 1024 * 1024, help="413 above (default: 32 MiB)")
    s.add_argument(
        "--max-pixels", type=positive_int, default=50_000_000, help="an image over this is an error (default: 50 MP)"
    )
    s.add_argument("--max-lookup-hashes", type=positive_int, default=10_000, help="hashes per lookup (default: 10000)")
    s.add_argument("--timeout", type=float, default=30.0, help="seconds of work per request, 503 after (default: 30)")
    s.add_argument("--body-timeout", type=float, default=30.0, help="seconds to receive a body, 408 after")
    s.add_argument(
        "--reload-interval",
        type=float,
        default=2.0,
        help="seconds between checks for a new index generation (0: never)",
    )
    s.add_argument("--hash-threads", type=positive_int, default=2, help="images hashed at once (default: 2)")
    s.add_argument(
        "--search-threads",
        type=positive_int,
        default=None,
        help="threads one search may use (default: as the search decides from the batch's work, up to every core)",
    )
    s.add_argument(
        "--forwarded-allow-ips",
        metavar="IPS",
        help="addresses of trusted proxies (comma-separated, '*': any): the client address that the audit log "
        "records is then taken from their X-Forwarded-For header (default: none trusted; the peer's address)",
    )
    s.set_defaults(handler=_cmd_serve)
    ssub = s.add_subparsers(dest="serve_command", metavar="keys")
    ssub.required = False
    keys = ssub.add_parser(
        "keys", help="manage API keys", description="API keys of the service (stored hashed in DIR/keys.json)."
    )
    ksub = keys.add_subparsers(dest="keys_command", metavar="ACTION")
    ksub.required = True
    add = ksub.add_parser("add", help="create a key (printed once; only its hash is stored)")
    add.add_argument("name", metavar="NAME", help="who or what the key is for")
    add.set_defaults(handler=_cmd_keys_add)
    listing = ksub.add_parser("list", help="list keys (id, name, created, revoked)")
    listing.add_argument("--json", action="store_true", help="JSON lines")
    listing.set_defaults(handler=_cmd_keys_list)
    revoke = ksub.add_parser("revoke", help="revoke a key by id (effective on the next request)")
    revoke.add_argument("key_id", metavar="ID")
    revoke.set_defaults(handler=_cmd_keys_revoke)
    for p in (add, listing, revoke):
        _add_config_argument(p)
        add_common_options(p, after_command=True)
    add_common_options(s, after_command=True)


def _keys(args: argparse.Namespace) -> Any:
    from ..serve.config import ServeConfig
    from ..serve.keys import KeyStore

    return KeyStore(ServeConfig(index="", config_dir=args.config).keys_path)


def _cmd_keys_add(args: argparse.Namespace) -> int:
    stored, key = _keys(args).add(args.name)
    print(key)
    if not args.quiet:
        print(f"matcher serve keys: added key {stored.id} ({stored.name}); it is shown only now", file=sys.stderr)
    return EXIT_OK


def _cmd_keys_list(args: argparse.Namespace) -> int:
    for key in _keys(args).keys():
        if args.json:
            data = key.to_dict()
            data.pop("digest")
            print(json.dumps(data))
        else:
            state = f"revoked {key.revoked_at}" if key.revoked_at else "active"
            print(f"{key.id}\t{key.name}\tcreated {key.created_at}\t{state}")
    return EXIT_OK


def _cmd_keys_revoke(args: argparse.Namespace) -> int:
    key = _keys(args).revoke(args.key_id)
    if not args.quiet:
        print(f"matcher serve keys: key {key.id} ({key.name}) revoked at {key.revoked_at}", file=sys.stderr)
    return EXIT_OK


def _cmd_serve(args: argparse.Namespace) -> int:
    from ..algorithms import registry
    from ..serve.config import CONFIG_ENVIRONMENT, ServeConfig, is_loopback

    if not args.index:
        raise UsageError("matcher serve needs --index INDEX (or: matcher serve keys add|list|revoke)")
    if bool(args.ssl_certfile) != bool(args.ssl_keyfile):
        raise UsageError("--ssl-certfile and --ssl-keyfile go together")
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be 0..65535, not {args.port}")
    algorithms = tuple(a.name for a in registry.resolve(args.algorithms)) if args.algorithms else ()
    config = ServeConfig(
        index=os.path.abspath(args.index),
        config_dir=args.config,
        audit_log=args.audit_log,
        auth=not args.no_auth,
        host=args.host,
        algorithms=algorithms,
        max_distances=max_distances(args),
        max_body_bytes=args.max_body_bytes,
        max_pixels=args.max_pixels,
        max_lookup_hashes=args.max_lookup_hashes,
        request_timeout=args.timeout,
        body_timeout=args.body_timeout,
        reload_interval=args.reload_interval,
        hash_threads=args.hash_threads,
        search_threads=args.search_threads,
    )
    if config.auth:
        from ..serve.keys import KeyStore

        if KeyStore(config.keys_path).active_count() == 0:
            raise UsageError(
                f"no API key in {config.keys_path}: create one with 'matcher serve keys add NAME --config "
                f"{args.config}' (or, on the loopback interface only, run with --no-auth)"
            )
    tls = bool(args.ssl_certfile)
    if not tls and not is_loopback(args.host):
        logging.getLogger("matcher.serve").warning(
            "serving on %s without TLS: API keys and answers cross the network in clear text "
            "(give --ssl-certfile/--ssl-keyfile, or terminate TLS at a load balancer)",
            args.host,
        )
    import uvicorn

    from ..serve.app import SWITCH_INTERVAL

    sys.setswitchinterval(SWITCH_INTERVAL)  # this process serves: see SWITCH_INTERVAL

    from ..serve.app import create_app

    options: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "log_level": "info" if args.verbose else "warning",
        "ssl_certfile": args.ssl_certfile,
        "ssl_keyfile": args.ssl_keyfile,
        "timeout_graceful_shutdown": 10,
        "server_header": False,
        "access_log": bool(args.verbose),  # the audit log records every request already
        # X-Forwarded-For is believed only from the proxies named: else any client could write the
        # address that the audit log records
        "proxy_headers": bool(args.forwarded_allow_ips),
        "forwarded_allow_ips": args.forwarded_allow_ips or "",
    }
    metrics_dir: str | None = None
    if args.workers > 1:
        from ..index import open_any

        open_any(config.index).close()  # a bad index fails here, once, not in every worker
        metrics_dir = tempfile.mkdtemp(prefix="matcher-serve-metrics-")  # the workers' /metrics sum each other's
        os.environ[CONFIG_ENVIRONMENT] = dataclasses.replace(config, metrics_dir=metrics_dir).to_json()
        target: Any = "matcher.serve.app:create_app_from_environment"
        options.update(factory=True, workers=args.workers)
    else:
        target = create_app(config)
    scheme = "https" if tls else "http"
    if not args.quiet:
        print(
            f"matcher serve: {scheme}://{args.host}:{args.port} serving {config.index} "
            f"({'API keys from ' + str(config.keys_path) if config.auth else 'no auth, loopback only'}; "
            f"audit log {config.audit_path})",
            file=sys.stderr,
            flush=True,
        )
    try:
        uvicorn.run(target, **options)
    except SystemExit as exc:  # uvicorn exits 1 when it cannot bind: 1 means "match" here
        if exc.code in (None, 0):
            return EXIT_OK
        print(f"matcher serve: the server could not start on {args.host}:{args.port} (see above)", file=sys.stderr)
        return EXIT_USAGE
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    return EXIT_OK
