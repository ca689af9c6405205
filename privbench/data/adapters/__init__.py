"""privbench/data/adapters"""
