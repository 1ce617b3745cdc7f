"""Generation-quality metrics: zip-coordinate p-value, Levenshtein per character, copy rates."""
