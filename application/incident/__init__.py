"""The incident practice as the write path sees it."""
