"""`chatbot bench`: the benchmark runner."""
