"""Leaderboard rendering (terminal, Markdown, CSV, static HTML) and published reference entries."""
