"""`python -m alrp_cli` runs the same CLI as the `alrp` console script."""

from alrp_cli.cli.app import main

if __name__ == "__main__":
    main()
