"""`python -m chaos [--profile full|short] [--clients N] [--seed S] [--out DIR]`: one run,
results in DIR (chaos/results by default); exits 1 on any violation."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from chaos.run import PROFILES, RESULTS, ChaosRun


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos", description=__doc__)
    parser.add_argument("--profile", choices=sorted(PROFILES), default="full")
    parser.add_argument("--clients", type=int, help="client threads (default: the profile's)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    profile = PROFILES[args.profile]
    clients = args.clients or profile.clients
    return ChaosRun(profile, clients=clients, seed=args.seed, out=args.out).execute()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
