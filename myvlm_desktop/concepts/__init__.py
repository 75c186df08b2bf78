"""MyVLM concept heads: is this concept in this photo? Trained from what the user named.

- person.py   PersonHead: nearest-key matching of face embeddings within the engine's threshold, with
              negative keys (rejected faces, the other people of the concept's own photos)
- linear.py   LinearHead: nn.Linear(dim, 2) on image embeddings, trained with MyVLM's recipe
- store.py    heads on disk as safetensors + JSON; ConceptFileError for damaged files
- train.py    train a concept's head from the library, retrain stale ones (ensure_heads)
- detect.py   detect_image: run every head on one image, in the library or not
The library-wide detection job (occurrences) is pipeline/detect.py.
"""
