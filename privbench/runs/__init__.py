"""privbench/runs"""
