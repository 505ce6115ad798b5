"""The CPU kernel of the FastAPI recipes: pure Python, so it holds the GIL the
whole time, as the CPU work in the original question does."""


def burn(units: int) -> int:
    """Spins `units` rounds of integer arithmetic and returns a checksum, so that
    the work cannot be skipped."""
    acc = 0
    for i in range(units):
        acc = (acc * 31 + i) & 0xFFFFFFFF
    return acc
