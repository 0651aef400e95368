"""The drop box on disk: route folders, claims and moves, and the result files beside each file."""
