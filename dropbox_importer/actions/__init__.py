"""One module per operator action of the command line."""
