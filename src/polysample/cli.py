"""The ``polysample`` command.

* ``polysample backends [--verbose] [--explain FAMILY]``: every registered backend with its
  version, status, number of families and of reparameterized families; a broken,
  unavailable or disabled one shows its error; ``--verbose`` adds each plugin's distribution,
  version and module; ``--explain FAMILY`` says which backend draws FAMILY now, and why.
* ``polysample new-backend NAME [--path DIR]``: write a plugin package for a new backend.
* ``polysample sample FAMILY --param NAME=VALUE ... [-n N] [--backend B] [--seed S]
  [--rsample] [--dtype float32|float64] [--json]``: draw and print values. A value is a number
  or a JSON list (``--param probs=[0.2,0.8]``). With ``--rsample`` the draw is reparameterized
  and the gradient of the sum of the values with respect to each parameter is printed too.
* ``polysample validate ...``: the conformance suite (:mod:`polysample.conformance.cli`),
  imported only when asked for, so the other commands never import SciPy.
* ``polysample bench ...``: each backend timed beside its native library, and ``--calibrate``
  for the routing table of the ``auto`` backend (:mod:`polysample.bench.cli`);
  ``polysample backends --routes`` shows that table.

Exit status: 0 success, 1 failure (the command ran and something failed), 2 usage error
(a bad command line: unknown family or backend, a malformed or invalid parameter, seed or
count). Errors are printed as one line, ``polysample: error: ...``, without a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

__all__ = ["main", "build_parser"]


def _route_words(family: str, ops: Any) -> str:
    """What a routing backend (``auto``) hands each operation of ``family`` to, by size."""
    parts = []
    for op, choice in ops.items():
        segs = list(getattr(choice, "segments", ()))
        if not segs:
            continue
        if len(segs) == 1:
            parts.append(f"{op} to {segs[0][1]!r}")
        else:
            steps = [f"{segs[0][1]!r} below {segs[1][0]:,} values"]
            steps += [f"{b!r} from {n:,}" for n, b in segs[1:]]
            parts.append(f"{op} to " + ", ".join(steps))
    if not parts:
        return f"It routes no operation of {family} to another backend."
    return f"It routes each call of {family} by operation and size: " + "; ".join(parts) + "."


class _UsageError(Exception):
    """A bad command line detected by this module (exit status 2)."""


def _validate_wanted(argv: Sequence[str]) -> bool:
    """True when the command is ``validate`` or the top-level help is asked for."""
    for arg in argv:
        if arg in ("-h", "--help"):
            return True
        if not arg.startswith("-"):
            return arg == "validate"
    return False


class _Parser(argparse.ArgumentParser):
    """argparse's parser whose usage errors are one line, ``polysample: error: ...``, with a
    did-you-mean for a mistyped choice and where to find the options (argparse printed its
    usage block and a ``polysample <command>: error:`` line). Subcommands' parsers are of this
    class too (``add_subparsers`` makes them of the parent's class)."""

    def error(self, message: str) -> NoReturn:
        import re

        from .core.errors import did_you_mean

        bad = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        message = message.rstrip(".") + "."
        if bad:
            message += did_you_mean(bad.group(1), re.findall(r"'([^']*)'", bad.group(2)))
        print(f"polysample: error: {message} Run '{self.prog} --help' for the options.",
              file=sys.stderr)
        sys.exit(2)


def build_parser(with_validate: bool = True) -> argparse.ArgumentParser:
    """The argument parser; ``with_validate=False`` leaves out the conformance import."""
    parser = _Parser(
        prog="polysample",
        description="One PyTorch-style sample()/rsample() API, drawn by the backend you choose.",
        epilog="Exit status: 0 success, 1 failure, 2 usage error.",
    )
    from . import __version__

    parser.add_argument("--version", action="version", version=f"polysample {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("backends", help="list installed backends",
                       description="List every registered backend: name, version, status, "
                       "families, reparameterized families; broken ones with their error.")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--verbose", "-v", action="store_true",
                   help="also show each plugin's distribution, version, module and load error")
    p.add_argument("--explain", metavar="FAMILY",
                   help="say which backend draws FAMILY under the current configuration, and "
                        "why (which setting chose it, and any fallback)")
    p.add_argument("--routes", action="store_true",
                   help="show the routing table of the 'auto' backend: each route, the "
                        "measured figures and the conformance verdict it rests on")
    p.set_defaults(func=_cmd_backends)

    p = sub.add_parser(
        "new-backend", help="write a new backend plugin package (a scaffold that passes the "
        "conformance suite)",
        description="Write a plugin package for a new backend: pyproject.toml with the entry "
        "point, a TableBackend with one example family, and a conformance test through the "
        "pytest plugin. `pip install -e DIR` it, then `pytest` in it.")
    p.add_argument("name", help="the backend's name, e.g. mybackend (also the package name)")
    p.add_argument("--path", metavar="DIR", help="where to write it (default: ./polysample-NAME)")
    p.set_defaults(func=_cmd_new_backend)

    p = sub.add_parser(
        "sample", help="draw values from a family",
        description="Draw values from a polysample family, e.g. "
        "`polysample sample Normal --param loc=0 --param scale=1 -n 5 --seed 0`.")
    p.add_argument("family", help="a torch.distributions family name, e.g. Normal")
    p.add_argument("--param", "-p", action="append", default=[], metavar="NAME=VALUE",
                   help="a constructor argument: a number or a JSON list (repeatable)")
    p.add_argument("-n", "--num", type=int, default=1, metavar="N",
                   help="number of draws (sample_shape=(N,)); default 1")
    p.add_argument("--backend", "-b", help="backend name (default: the configured one)")
    p.add_argument("--seed", "-s", type=int, help="seed for a reproducible draw")
    p.add_argument("--rsample", action="store_true",
                   help="reparameterized draw; also prints d(sum of values)/d(parameter)")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                   help="dtype of the parameters (default float32)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=_cmd_sample)

    from .bench.cli import register as register_bench

    register_bench(sub)

    if with_validate:
        try:
            from .conformance.cli import register
        except ImportError as exc:
            missing = str(exc)
            v = sub.add_parser("validate", help="run the conformance suite (unavailable here)")
            v.set_defaults(func=lambda args: _unavailable_validate(missing))
        else:
            register(sub)
    else:
        sub.add_parser("validate", help="run the conformance suite", add_help=False)
    return parser


def _unavailable_validate(reason: str) -> int:
    print(f"polysample: error: the conformance suite could not be imported ({reason}). "
          "Install the extra: pip install 'polysample[conformance]'.", file=sys.stderr)
    return 1


# --------------------------------------------------------------------------- backends
def _cmd_backends(args: argparse.Namespace) -> int:
    import polysample as ps

    if args.routes:
        from .bench.cli import print_routes

        return print_routes(as_json=args.json)

    if args.explain is not None:
        from .core.families import FAMILIES

        if args.explain not in FAMILIES:
            from .core.errors import did_you_mean

            raise _UsageError(f"Unknown family {args.explain!r}. Expected one of: "
                              f"{', '.join(sorted(FAMILIES))}."
                              f"{did_you_mean(args.explain, sorted(FAMILIES))}")
        res = ps.backend_for(args.explain)
        if args.json:
            print(json.dumps({"family": res.family, "backend": res.name, "source": res.source,
                              "chosen": res.chosen, "fallback": list(res.fallback)}))
        else:
            print(res.explain())
            routes = getattr(res.backend, "routes", None)
            if getattr(res.backend, "router", False) and callable(routes):
                print(_route_words(args.explain, routes().get(args.explain, {})))
        return 0
    rows = ps.backends()
    if args.json:
        print(json.dumps([
            {"name": r.name, "version": r.version, "status": r.status, "families": r.families,
             "rsample_families": r.rsample_families, "source": r.source, "error": r.error,
             "module": r.module, "distribution": r.distribution,
             "distribution_version": r.dist_version}
            for r in rows
        ], indent=2))
        return 0
    if args.verbose:
        for r in rows:
            print(f"{r.name}: {r.status}, version {r.version or '-'}, {r.families} families "
                  f"({r.rsample_families} with rsample)")
            print(f"  distribution: {r.distribution or '-'} {r.dist_version}".rstrip())
            print(f"  module: {r.module or '-'}")
            print(f"  registered by: {r.source}")
            if r.error:
                print(f"  error: {r.error}")
        return 0
    header = ("name", "version", "status", "families", "rsample", "source")
    table = [header] + [
        (r.name, r.version or "-", r.status, str(r.families), str(r.rsample_families), r.source)
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for i, row in enumerate(table):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))
    for r in rows:
        if r.error:
            print(f"\n{r.name} ({r.status}): {r.error}")
    return 0


def _cmd_new_backend(args: argparse.Namespace) -> int:
    from .scaffold import write_scaffold

    try:
        root = write_scaffold(args.name, args.path)
    except (ValueError, FileExistsError) as exc:
        raise _UsageError(str(exc)) from None
    except OSError as exc:  # a path that cannot be written: a missing parent, no permission
        raise _UsageError(
            f"Cannot write the {args.name!r} backend plugin to "
            f"{args.path or 'polysample-' + args.name}: {exc.strerror or exc}"
            f"{' (' + str(exc.filename) + ')' if exc.filename else ''}. Choose a --path "
            "you can write to.") from None
    print(f"Wrote the {args.name!r} backend plugin to {root}. Next:\n"
          f"  pip install -e {root}\n"
          f"  cd {root} && pytest          # the conformance suite on your backend\n"
          f"  polysample validate --backend {args.name} --quick")
    return 0


# --------------------------------------------------------------------------- sample
def _parse_params(items: Sequence[str], family: str, dtype: Any) -> dict[str, Any]:
    import torch

    from .core.families import FAMILIES

    spec = FAMILIES[family]
    params: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise _UsageError(f"Expected --param NAME=VALUE, e.g. --param loc=0. Received: {item!r}.")
        _check_param_name(name, family)
        try:
            # nan, inf and -inf as Python writes them (JSON's NaN and Infinity too): the
            # distribution then says that parameters must be finite
            value = json.loads(_NON_FINITE.get(text.strip().lower(), text))
        except RecursionError:
            raise _UsageError(
                f"Expected the value of --param {name} to be a number or a (nested) list of "
                f"numbers of at most 64 levels. Received: a value nested deeper "
                f"({len(text)} characters).") from None
        except json.JSONDecodeError:
            raise _UsageError(
                f"Expected the value of --param {name} to be a number or a JSON list such as "
                f"[0.2, 0.8]. Received: {text!r}."
            ) from None
        if _depth(value) > 64:
            raise _UsageError(
                f"Expected the value of --param {name} to be a number or a (nested) list of "
                f"numbers of at most 64 levels (torch's limit of dimensions). Received: "
                f"{_depth(value)} levels.")
        if not _is_numeric(value):
            raise _UsageError(
                f"Expected the value of --param {name} to be a number or a (nested) list of "
                f"numbers. Received: {text!r}."
            )
        if name in params:
            raise _UsageError(f"--param {name} is given twice. Give each parameter once.")
        if name in spec.integer_params:
            if not isinstance(value, int):
                raise _UsageError(
                    f"Expected --param {name} of {family} to be an integer. Received: {text!r}."
                )
            params[name] = value
        else:
            try:
                params[name] = torch.tensor(value, dtype=dtype)
            except (ValueError, TypeError, RuntimeError):  # a ragged list: [[0.5, 0.5], [1]]
                raise _UsageError(
                    f"Expected the value of --param {name} to be a number or a rectangular "
                    f"(nested) list of numbers, every inner list of one length. Received: "
                    f"{text!r}.") from None
    return params


_NON_FINITE = {"nan": "NaN", "inf": "Infinity", "+inf": "Infinity", "-inf": "-Infinity",
               "infinity": "Infinity", "-infinity": "-Infinity"}
#: Constructor arguments that are options of the command, not parameters of the law.
_OPTIONS = {"backend": "give the backend with --backend NAME",
            "validate_args": "the command always validates the parameters",
            "seed": "give the seed with --seed N", "generator": "give a seed with --seed N"}


def _check_param_name(name: str, family: str) -> None:
    """A usage error for a name that is not a parameter of ``family``'s constructor."""
    from .core.guards import _signature

    names = [n for n in _signature(family)[0] if n != "validate_args"]
    if name in names:
        return
    if name in _OPTIONS:
        raise _UsageError(f"{name} is not a parameter of {family}: {_OPTIONS[name]}. "
                          f"Expected --param with one of: {', '.join(names)}.")
    raise _UsageError(f"Unknown parameter {name!r} of {family}. Expected --param with one of: "
                      f"{', '.join(names)}. Received: --param {name}=...")


def _depth(value: object) -> int:
    """How deeply ``value`` nests lists (0 for a number), without recursion."""
    depth = 0
    while isinstance(value, list):
        depth += 1
        value = value[0] if value else None
    return depth


def _is_numeric(value: object) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return True
    return isinstance(value, list) and len(value) > 0 and all(_is_numeric(v) for v in value)


def _cmd_sample(args: argparse.Namespace) -> int:
    import torch

    import polysample as ps

    from .core.config import resolve_backend
    from .core.families import FAMILIES

    if args.family not in FAMILIES:
        from .core.errors import did_you_mean

        raise _UsageError(
            f"Unknown family {args.family!r}. Expected one of: {', '.join(sorted(FAMILIES))}."
            f"{did_you_mean(args.family, sorted(FAMILIES))}")
    if args.num < 0:
        raise _UsageError(f"Expected -n to be a non-negative count. Received: {args.num}.")
    dtype = getattr(torch, args.dtype)
    params = _parse_params(args.param, args.family, dtype)
    if args.rsample:
        for value in params.values():
            if isinstance(value, torch.Tensor):
                value.requires_grad_(True)
    if args.backend is not None:
        _cli_backend_supports(args.backend, args.family)
    dist = getattr(ps, args.family)(**params, backend=args.backend)
    draw = dist.rsample if args.rsample else dist.sample
    values = draw((args.num,), seed=args.seed)
    grads: dict[str, list[Any]] = {}
    if args.rsample:
        leaves = {k: v for k, v in params.items()
                  if isinstance(v, torch.Tensor) and v.requires_grad}
        if leaves:
            got = torch.autograd.grad(values.sum(), list(leaves.values()), allow_unused=True)
            grads = {k: (g.tolist() if g is not None else None)
                     for k, g in zip(leaves, got)}  # type: ignore[misc]
    backend = resolve_backend(args.family, args.backend).name
    if args.json:
        print(json.dumps({"family": args.family, "backend": backend, "seed": args.seed,
                          "method": "rsample" if args.rsample else "sample",
                          "values": values.detach().tolist(), "grad": grads or None}))
        return 0
    shown = ", ".join(f"{k}={_fmt(v)}" for k, v in params.items())
    method = "rsample" if args.rsample else "sample"
    print(f"{args.family}({shown}).{method}(({args.num},)) on backend {backend!r}"
          + (f", seed {args.seed}" if args.seed is not None else ""))
    # Row by row from chunks: a Python list of every value takes about 8 times the tensor.
    for chunk in values.detach().split(1 << 16):
        for row in chunk.tolist():
            print(f"  {_fmt(row)}")
    for name, g in grads.items():
        print(f"d(sum)/d({name}) = {_fmt(g)}")
    return 0


def _cli_backend_supports(name: str, family: str) -> None:
    """A usage error (exit status 2) in the command line's words (``--backend``, not the Python
    API's ``backend=``) when backend ``name`` and its fallbacks cannot draw ``family``, naming
    the backends that can."""
    import polysample as ps

    from .core.config import resolve_backend
    from .core.errors import UnsupportedFamilyError

    try:
        resolve_backend(family, name)
    except UnsupportedFamilyError as exc:
        why = getattr(ps.load_backend(name), "omitted", {}).get(family)
        able = [b.name for b in ps.backends()
                if b.status == "available" and family in b.family_names]
        raise _UsageError(
            f"Backend {name!r} (--backend) does not support {family!r}"
            + (f" ({why.rstrip('.')})" if why else "") + ". "
            + (f"Backends that do: {', '.join(able)}; pass one with --backend."
               if able else "No installed backend does.")) from exc


def _fmt(value: Any) -> str:
    import torch

    if isinstance(value, torch.Tensor):
        value = value.detach().tolist()
    if isinstance(value, list):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


# --------------------------------------------------------------------------- entry point
def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(with_validate=_validate_wanted(argv))
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help / --version (0) or a usage error (2)
        return int(exc.code or 0)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:  # Ctrl-C: one line, the shell's status for SIGINT
        print("polysample: interrupted", file=sys.stderr)
        return 130
    except _UsageError as exc:
        print(f"polysample: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except Exception as exc:
        from .core.errors import PolysampleError

        if not isinstance(exc, PolysampleError):
            raise
        from .core.errors import InvalidParameterError, SampleTooLargeError, UnknownBackendError

        print(f"polysample: error: {_one_line(exc)}", file=sys.stderr)
        usage = UnknownBackendError | InvalidParameterError | SampleTooLargeError  # -n too large
        return 2 if isinstance(exc, usage) else 1


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())
