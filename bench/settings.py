"""Reservo as the benchmark serves it: the project's settings, with the benchmark's URLconf."""

from reservo.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
