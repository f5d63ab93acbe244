"""Option ranges shared by every command, so that one value means the same everywhere."""

SEED_MAX = 2**32 - 1  # numpy's and torch's seed range; every --seed is 0..SEED_MAX
