"""MyVLM concept embeddings inside vision-language models: backends, the concept layer, training, generation."""
