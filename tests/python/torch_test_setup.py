"""Shared start of the spt_torch tests: argument parsing, the skip rules, imports.

The tests run as  PYTHON tests/python/test_torch_*.py --spt build/spt --repo .  with
SPT_TORCH_PACKAGE=<build>/python in the environment (ctest sets it when the build has the
extension). Exit code 77 (a skip, with the reason printed) when torch cannot be imported or
the build has no spt_torch; any other failure is a test failure.
"""
import argparse
import os
import sys

SKIP = 77


def setup(description):
    """Parses --spt/--repo, imports torch, spt_torch and the reference; returns the arguments
    and leaves unittest's own options in sys.argv."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--spt", required=True, help="the spt binary")
    ap.add_argument("--repo", required=True, help="the repository root")
    args, rest = ap.parse_known_args()
    sys.argv = [sys.argv[0]] + rest
    try:
        import torch  # noqa: F401
    except ImportError as error:
        print(f"torch is not importable ({error}): skipping")
        sys.exit(SKIP)
    package = os.environ.get("SPT_TORCH_PACKAGE")
    if not package:
        print("SPT_TORCH_PACKAGE is not set: this build has no spt_torch (configure with -DSPT_TORCH=ON, which "
              "needs torch's C++ headers: Debian's libtorch-dev): skipping")
        sys.exit(SKIP)
    sys.path.insert(0, package)
    sys.path.insert(0, os.path.join(args.repo, "tools", "reference"))
    return args
