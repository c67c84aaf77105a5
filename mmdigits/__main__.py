"""`python -m mmdigits` (also what torchrun runs with `-m mmdigits`)."""

from mmdigits.cli import run

run()
