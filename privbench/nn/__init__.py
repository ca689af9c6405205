"""privbench/nn"""
