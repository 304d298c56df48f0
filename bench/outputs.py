"""Shared by the bench scripts: results are never overwritten."""
import os


def refuse_existing(parser, **paths) -> None:
    """parser.error (before any work) if a named output already exists; paths: {flag name: path or None},
    e.g. refuse_existing(p, out=args.out, strip=args.strip) names --out / --strip in the message."""
    for flag, path in paths.items():
        if path and os.path.exists(path):
            parser.error(f"--{flag} {path}: the file exists; remove it or name another (results are never overwritten)")
