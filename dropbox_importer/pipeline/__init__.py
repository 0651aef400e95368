"""The pipeline of a dropped file: watch -> claim -> submit -> poll -> settle, and its journal."""
