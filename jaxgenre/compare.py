"""`python -m jaxgenre.compare RUN_A RUN_B [--json=FILE]`: two finished runs compared on
the clips both tested. The comparison itself is `jaxgenre.results.compare`; this module is
the documented command."""

from jaxgenre.results.compare import main

if __name__ == "__main__":
    from jaxgenre import cli

    cli.run(main)
