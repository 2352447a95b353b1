"""Dead letters: one per failing consumer, listed, shown and redriven to that consumer."""
