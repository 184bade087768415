"""`python -m simulator` is the same as the `s3sim` console script."""

import sys

from simulator.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
