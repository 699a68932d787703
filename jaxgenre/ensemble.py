"""`python -m jaxgenre.ensemble --workdir=DIR RUN...`: finished runs' test probabilities
averaged into one classifier. The ensemble itself is `jaxgenre.results.ensemble`; this
module is the documented command."""

from jaxgenre.results.ensemble import main

if __name__ == "__main__":
    from jaxgenre import cli

    cli.run(main)
