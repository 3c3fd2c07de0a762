"""`python -m minirnn SUBCOMMAND`: the command line of minirnn/cli.py."""
import sys

from .cli import main

sys.exit(main())
