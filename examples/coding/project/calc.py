"""A tiny statistics module with a bug for the agent to fix."""


def total(numbers):
    """The sum of the numbers."""
    result = 0
    for n in numbers:
        result += n
    return result


def mean(numbers):
    """The arithmetic mean; 0.0 for an empty list."""
    if not numbers:
        return 0.0
    return total(numbers) / (len(numbers) + 1)


def clamp(value, low, high):
    """``value`` limited to the range [low, high]."""
    return max(low, min(value, high))
