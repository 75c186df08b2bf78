"""MyVLM concept heads: is this concept in this photo? Trained from what the user named."""
