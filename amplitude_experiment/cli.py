"""Command line: download a deployment's flags, evaluate a user, explain a flag.

``python -m amplitude_experiment --help`` (or ``amplitude-experiment-local --help``).
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import sys
from typing import Any, Dict, List, NoReturn, Optional, Sequence, Tuple
from urllib.parse import urlsplit

import requests

from .evaluation import CompiledFlags, compile_flags
from .evaluation.explain import FLAG_NOT_FOUND, FLAG_SKIPPED, EvaluationDetail, evaluate_details, explain
from .exceptions import FetchError
from .flags.cache import write_flag_file
from .flags.fetcher import FlagFetcher
from .server_zone import DEFAULT_FLAGS_URL, ServerZone
from .user import USER_CONTEXT_FIELDS, User

__all__ = ["EXIT_INPUT", "EXIT_NETWORK", "EXIT_NOT_FOUND", "EXIT_OK", "EXIT_USAGE", "KEY_ENV", "main"]

PROG = "amplitude-experiment-local"
#: Environment variable read when ``--deployment-key`` is not given.
KEY_ENV = "AMPLITUDE_DEPLOYMENT_KEY"

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_INPUT = 3
EXIT_NETWORK = 4
EXIT_NOT_FOUND = 5

DEFAULT_TIMEOUT = 10.0

_EPILOG = """\
examples:
  {prog} flags --deployment-key server-... -o flags.json
  {prog} evaluate --flags flags.json --user-id u1 --prop plan=pro --prop age=31
  {prog} evaluate --deployment-key server-... --user '{{"device_id": "d1", "country": "DE"}}' --json
  {prog} explain checkout-redesign --flags flags.json --device-id d1

exit codes:
  0  success
  2  usage error (bad or missing option, missing deployment key)
  3  bad input: a file cannot be read or written, invalid JSON, a flags file that is not a
     JSON array of flags, a user that is not a JSON object of User fields, a malformed flag
  4  network or HTTP error downloading flags (401/403: the deployment key was rejected)
  5  a requested flag is not in the flags

The deployment key may also be given in the {key_env} environment variable.
"""

_OBJECT_FIELDS = ("user_properties", "groups", "group_properties", "group_cohort_ids")
_STRING_FIELDS = tuple(name for name in USER_CONTEXT_FIELDS if name not in _OBJECT_FIELDS + ("cohort_ids",))
_USER_FIELDS = _STRING_FIELDS + _OBJECT_FIELDS + ("cohort_ids",)


class CliError(Exception):
    """An error reported as one line on stderr, with its exit code."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line instead of argparse's usage block, so the error is what the eye lands on.
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# ----- argument parsing ----------------------------------------------------------------------


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text!r}")
    return value


def _url(text: str) -> str:
    if not text.startswith(("http://", "https://")) or not urlsplit(text).netloc:
        raise argparse.ArgumentTypeError(f"must be an http(s) URL, not {text!r}")
    return text.rstrip("/")


def _property(text: str) -> Tuple[str, Any]:
    name, sep, raw = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, not {text!r}")
    try:
        value: Any = json.loads(raw)
    except ValueError:
        value = raw  # not JSON: the text itself
    return name, value


def _add_server_options(parser: argparse.ArgumentParser, *, with_key: bool) -> None:
    group = parser.add_argument_group("flag server")
    if with_key:
        group.add_argument("--deployment-key", metavar="KEY",
                           help=f"server deployment key (default: ${KEY_ENV})")
    where = group.add_mutually_exclusive_group()
    where.add_argument("--server-url", type=_url, metavar="URL",
                       help=f"flag server (default: {DEFAULT_FLAGS_URL[ServerZone.US]})")
    where.add_argument("--eu", action="store_true",
                       help=f"use the EU data center ({DEFAULT_FLAGS_URL[ServerZone.EU]})")
    group.add_argument("--timeout", type=_positive_float, metavar="S",
                       help=f"request timeout in seconds (default: {DEFAULT_TIMEOUT:g})")


def _add_evaluation_options(parser: argparse.ArgumentParser) -> None:
    source = parser.add_argument_group("flags source (one of)")
    exclusive = source.add_mutually_exclusive_group()
    exclusive.add_argument("--flags", metavar="FILE", help="flags file: a JSON array of v2 flag configs ('-': stdin)")
    exclusive.add_argument("--deployment-key", metavar="KEY",
                           help=f"download the deployment's flags (default: ${KEY_ENV})")
    _add_server_options(parser, with_key=False)
    user = parser.add_argument_group("user")
    given = user.add_mutually_exclusive_group()
    given.add_argument("--user", metavar="JSON",
                       help='the user as a JSON object of User fields, e.g. \'{"user_id": "u1", "country": "DE"}\'')
    given.add_argument("--user-file", metavar="FILE", help="read the user JSON object from FILE ('-': stdin)")
    user.add_argument("--user-id", metavar="ID", help="set user_id")
    user.add_argument("--device-id", metavar="ID", help="set device_id")
    user.add_argument("--prop", type=_property, action="append", default=[], metavar="NAME=VALUE",
                      help="set a user property; VALUE is parsed as JSON when it can be, else taken as "
                           "text (repeatable)")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    """The argument parser of the command line."""
    epilog = _EPILOG.format(prog=prog, key_env=KEY_ENV)
    parser = _Parser(prog=prog, description="Amplitude Experiment local evaluation: download flags, evaluate "
                     "users and explain results, without a running service.",
                     epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    flags = commands.add_parser("flags", help="download the deployment's flags as JSON", epilog=epilog,
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                description="Download the deployment's flag configs (pretty JSON).")
    _add_server_options(flags, with_key=True)
    flags.add_argument("-o", "--output", metavar="FILE", help="write to FILE (atomically) instead of stdout")

    evaluate = commands.add_parser("evaluate", help="evaluate a user: variant and reason per flag",
                                   epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter,
                                   description="Evaluate a user against a flags file or a live deployment.")
    _add_evaluation_options(evaluate)
    evaluate.add_argument("--flag", action="extend", nargs="+", metavar="KEY", dest="flag_keys",
                          help="only these flags (and the flags they depend on); repeatable")

    explain_ = commands.add_parser("explain", help="trace one flag's evaluation for a user", epilog=epilog,
                                   formatter_class=argparse.RawDescriptionHelpFormatter,
                                   description="Show, condition by condition, why a user gets a flag's variant.")
    explain_.add_argument("flag_key", metavar="FLAG", help="the flag to explain")
    _add_evaluation_options(explain_)
    return parser


# ----- inputs --------------------------------------------------------------------------------


def _read(path: str, what: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as exc:
        raise CliError(EXIT_INPUT, f"cannot read {what} {path!r}: {exc.strerror or exc}") from exc


def _decode(data: bytes, what: str) -> Any:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CliError(EXIT_INPUT, f"{what} is not UTF-8 text (byte {exc.start})") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(EXIT_INPUT, f"invalid JSON in {what}: {exc.msg} at line {exc.lineno}, "
                                   f"column {exc.colno}") from exc
    except RecursionError:
        raise CliError(EXIT_INPUT, f"{what} is nested too deeply to be flags or a user") from None


def _describe_type(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number")


def _deployment_key(args: argparse.Namespace) -> str:
    key = args.deployment_key if args.deployment_key is not None else os.environ.get(KEY_ENV)
    if key is None:
        raise CliError(EXIT_USAGE, f"no deployment key: pass --deployment-key KEY or set {KEY_ENV}")
    key = key.strip()
    if not key:
        raise CliError(EXIT_USAGE, "the deployment key is empty")
    if not all(c.isprintable() and not c.isspace() for c in key):
        # Such a key cannot go in a header, and requests would echo the header in its error.
        raise CliError(EXIT_USAGE, "the deployment key contains spaces or control characters")
    return key


def _server_url(args: argparse.Namespace) -> str:
    if args.server_url:
        return str(args.server_url)
    return DEFAULT_FLAGS_URL[ServerZone.EU if args.eu else ServerZone.US]


def _download(args: argparse.Namespace) -> Tuple[List[Any], str]:
    """The deployment's flags, and where they came from (for messages)."""
    key = _deployment_key(args)
    url = _server_url(args)
    timeout = args.timeout if args.timeout is not None else DEFAULT_TIMEOUT
    with requests.Session() as session:
        try:
            flags, _ = FlagFetcher(session, url, key, timeout).fetch()
        except FetchError as exc:
            message = str(exc)
            if len(key) >= 4:  # never echo the key, whatever the message holds (shorter ones are no secret)
                message = message.replace(key, "***")
            if exc.status_code in (401, 403):
                message += ": the deployment key was rejected (local evaluation needs a server deployment key)"
            raise CliError(EXIT_NETWORK, message) from exc
    return flags, url


def _load_flags(args: argparse.Namespace) -> Tuple[List[Any], str]:
    if args.flags is not None:
        if args.server_url or args.eu or args.timeout is not None:
            raise CliError(EXIT_USAGE, "--server-url, --eu and --timeout apply to --deployment-key, not --flags")
        what = "--flags input" if args.flags == "-" else f"--flags file {args.flags!r}"
        flags = _decode(_read(args.flags, "--flags file"), what)
        if not isinstance(flags, list):
            raise CliError(EXIT_INPUT, f"{what} must hold a JSON array of flags, not {_describe_type(flags)}")
        return flags, what
    if args.deployment_key is None and os.environ.get(KEY_ENV) is None:
        raise CliError(EXIT_USAGE, f"give --flags FILE or --deployment-key KEY (or set {KEY_ENV})")
    return _download(args)


def _user_fields(value: Any, what: str) -> Dict[str, Any]:
    if not isinstance(value, dict):
        raise CliError(EXIT_INPUT, f"{what} must be a JSON object of User fields, not {_describe_type(value)}")
    for name, field in value.items():
        if name not in _USER_FIELDS:
            close = difflib.get_close_matches(name, _USER_FIELDS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f" (fields: {', '.join(_USER_FIELDS)})"
            raise CliError(EXIT_INPUT, f"{what}: unknown user field {name!r}{hint}")
        if field is None:
            continue
        if name in _STRING_FIELDS and not isinstance(field, str):
            raise CliError(EXIT_INPUT, f"{what}: {name} must be a string, not {_describe_type(field)}")
        if name in _OBJECT_FIELDS and not isinstance(field, dict):
            raise CliError(EXIT_INPUT, f"{what}: {name} must be an object, not {_describe_type(field)}")
        if name == "cohort_ids" and not isinstance(field, list):
            raise CliError(EXIT_INPUT, f"{what}: cohort_ids must be an array, not {_describe_type(field)}")
    return dict(value)


def _load_user(args: argparse.Namespace) -> User:
    fields: Dict[str, Any] = {}
    if args.user is not None:
        fields = _user_fields(_decode(args.user.encode("utf-8", "surrogateescape"), "--user"), "--user")
    elif args.user_file is not None:
        if args.user_file == "-" and args.flags == "-":
            raise CliError(EXIT_USAGE, "--flags and --user-file cannot both read stdin")
        what = "--user-file input" if args.user_file == "-" else f"--user-file {args.user_file!r}"
        fields = _user_fields(_decode(_read(args.user_file, "--user-file"), what), what)
    if args.user_id is not None:
        fields["user_id"] = args.user_id
    if args.device_id is not None:
        fields["device_id"] = args.device_id
    if args.prop:
        properties = dict(fields.get("user_properties") or {})
        properties.update(args.prop)
        fields["user_properties"] = properties
    return User(**fields)


def _warn_if_empty(user: User) -> None:
    if not any(getattr(user, name) not in (None, "", {}, []) for name in _USER_FIELDS):
        _err("warning: the user is empty (no ids, fields or properties): targeting and bucketing see nothing; "
             "pass --user-id, --device-id, --prop or --user")


def _compile(flags: List[Any], source: str) -> CompiledFlags:
    compiled = compile_flags(flags)
    for key, reason in compiled.skipped.items():
        _err(f"warning: flag {key!r} in {source} is malformed and was skipped: {reason}")
    for message in compiled.warnings:
        _err(f"warning: {message}")
    return compiled


# ----- output --------------------------------------------------------------------------------


def _out(text: str) -> None:
    if not text.endswith("\n"):
        text += "\n"
    try:
        sys.stdout.write(text)
    except UnicodeEncodeError:  # a console that cannot show the trace's check marks
        encoding = sys.stdout.encoding or "ascii"
        sys.stdout.write(text.encode(encoding, "replace").decode(encoding))


def _err(text: str) -> None:
    sys.stderr.write(text.replace("\n", " ") + "\n")


def _dumps(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if value == "":
        return '""'
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text.replace("\n", " ")


def _table(details: Dict[str, EvaluationDetail]) -> str:
    rows = [("FLAG", "VARIANT", "VALUE", "REASON", "SEGMENT")]
    for key, detail in details.items():
        variant = detail.variant
        segment = detail.segment_name
        if segment is None and detail.segment_index is not None:
            segment = f"#{detail.segment_index}"
        rows.append((key, _cell(None if variant is None else variant.key),
                     _cell(None if variant is None else variant.value), detail.reason, _cell(segment)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join([c.ljust(w) for c, w in zip(row, widths)] + [row[-1]]) for row in rows)


def _not_found(keys: Sequence[str], compiled: CompiledFlags, source: str) -> CliError:
    known = list(compiled.flags) + list(compiled.skipped)
    hints = []
    for key in keys:
        close = difflib.get_close_matches(key, known, n=1)
        hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    noun = "flag" if len(keys) == 1 else "flags"
    return CliError(EXIT_NOT_FOUND, f"{noun} not found in {source}: {', '.join(hints)}")


# ----- commands ------------------------------------------------------------------------------


def _write_atomically(path: str, text: str) -> None:
    try:
        write_flag_file(path, text.encode("utf-8"))
    except OSError as exc:
        raise CliError(EXIT_INPUT, f"cannot write -o file {path!r}: {exc.strerror or exc}") from exc


def _cmd_flags(args: argparse.Namespace) -> int:
    flags, url = _download(args)
    text = _dumps(flags) + "\n"
    if args.output is None or args.output == "-":
        _out(text)
    else:
        _write_atomically(args.output, text)
        _err(f"wrote {len(flags)} flag{'' if len(flags) == 1 else 's'} from {url} to {args.output}")
    return EXIT_OK


def _cmd_evaluate(args: argparse.Namespace) -> int:
    user = _load_user(args)
    flags, source = _load_flags(args)
    compiled = _compile(flags, source)
    _warn_if_empty(user)
    keys: Optional[List[str]] = list(dict.fromkeys(args.flag_keys)) if args.flag_keys else None
    details = evaluate_details(compiled, user, keys)
    if args.json:
        _out(_dumps({key: detail.to_dict() for key, detail in details.items()}))
    elif details:
        _out(_table(details))
    else:
        _out("(no flags)")
    missing = [key for key in keys or () if details[key].reason == FLAG_NOT_FOUND]
    if missing:
        raise _not_found(missing, compiled, source)
    # Malformed flags are bad input whether they were asked for by name or not (help: exit code 3).
    skipped = [key for key in keys if details[key].reason == FLAG_SKIPPED] if keys else sorted(compiled.skipped)
    if skipped:
        raise CliError(EXIT_INPUT, f"malformed flag{'' if len(skipped) == 1 else 's'} in {source}: "
                                   f"{', '.join(map(repr, skipped))}")
    return EXIT_OK


def _cmd_explain(args: argparse.Namespace) -> int:
    user = _load_user(args)
    flags, source = _load_flags(args)
    compiled = _compile(flags, source)
    _warn_if_empty(user)
    explanation = explain(compiled, user, args.flag_key)
    if explanation.detail.reason == FLAG_NOT_FOUND:
        raise _not_found([args.flag_key], compiled, source)
    _out(_dumps(explanation.to_dict()) if args.json else explanation.to_text())
    if explanation.detail.reason == FLAG_SKIPPED:
        raise CliError(EXIT_INPUT, f"flag {args.flag_key!r} in {source} is malformed: {explanation.detail.message}")
    return EXIT_OK


_COMMANDS = {"flags": _cmd_flags, "evaluate": _cmd_evaluate, "explain": _cmd_explain}


def main(argv: Optional[Sequence[str]] = None, prog: str = PROG) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    parser = build_parser(prog)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help and on usage errors
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        return _COMMANDS[args.command](args)
    except CliError as exc:
        _err(f"{prog} {args.command}: error: {exc}")
        return exc.code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. piped into head: stop quietly, and keep the exit-time flush quiet too
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
