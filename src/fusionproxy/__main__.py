"""`python -m fusionproxy ...` is the same as the `fusionproxy` console script."""

from .cli import main

main()
