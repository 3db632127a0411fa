"""Earlier implementations kept as oracles: tests prove their replacements give the same answers."""
