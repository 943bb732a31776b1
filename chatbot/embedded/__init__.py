"""The embedded stack that `chatbot dev` (and the test suite) runs when nothing is configured:
every piece is a binary or library shipped in a PyPI wheel of the `local` extra."""
