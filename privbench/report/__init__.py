"""privbench/report"""
