"""privbench/api"""
