"""Gate tests reuse the penguins models' fixtures."""

from tests.models.conftest import objects, penguin_frame  # noqa: F401 (fixtures)
