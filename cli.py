"""minirnn's command line, kept at the repository root: `python cli.py SUBCOMMAND`.

The program itself is minirnn/cli.py, also run as `python -m minirnn` or, once installed, as
the `minirnn` command.
"""
import sys

from minirnn.cli import main

if __name__ == '__main__':
    sys.exit(main())
