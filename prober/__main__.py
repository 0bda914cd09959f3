"""`python -m prober` is the `prober` command."""

from prober.cli import main

main()
