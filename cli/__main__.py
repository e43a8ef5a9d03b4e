"""`python -m cli`: the same as the `theo` command."""

from cli.main import main

main()
